# Sourced by fresh-check.sh and pi-check.sh: a work folder under /var/tmp holding a throwaway
# root, the mounts made into it (undone in reverse order at exit, even on failure), and the
# root itself removed at exit unless KEEP=1.
#   . "$here/root-work.sh" NAME      sets work=/var/tmp/lanthorn-NAME.XXXXXX and root=$work/root
#   mount_in TYPE-OR-SRC DEST-IN-ROOT [ro]   "proc" mounts procfs; anything else is a rbind
work=$(mktemp -d "/var/tmp/lanthorn-$1.XXXXXX")
root="$work/root"
mounts=()

_root_work_cleanup() {
  local i
  for ((i=${#mounts[@]}-1; i>=0; i--)); do umount -l "${mounts[i]}" 2>/dev/null || true; done
  if [ -n "${KEEP:-}" ]; then
    echo "$1: root kept at $root"
  elif grep -q " $work/" /proc/mounts; then  # never rm -rf through a bind of the host's /dev
    echo "$1: $work still has mounts; not removed" >&2
  else
    rm -rf "$work"
  fi
}
trap "_root_work_cleanup $1" EXIT

mount_in() {
  mkdir -p "$root$2"
  if [ "$1" = proc ]; then mount -t proc proc "$root$2"; else mount --rbind "$1" "$root$2"; fi
  mounts+=("$root$2")
  if [ "${3:-}" = ro ]; then mount -o remount,bind,ro "$root$2"; fi
}
