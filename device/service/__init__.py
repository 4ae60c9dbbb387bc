"""Running under systemd: the unit file and the watchdog's notifications."""
