"""The console's parameter and preset commands: list, get, set, reset, save, preset *.

Apart from the server because they are the console's plainest part: each turns one line
into one call on the thread-safe :class:`~lanthorn.device.piece.params.ParamStore` (the loop
applies a change on its next frame) or on the data dir's presets, and one answer. Each
handler takes the server (for the app and the answer format), the command's name and its
arguments, as :data:`lanthorn.device.console.server.HANDLERS` calls it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - names for type checkers only
    from lanthorn.device.console.server import ConsoleServer


def cmd_list(server: "ConsoleServer", name, args):
    from lanthorn.device.piece.params import text_table
    store = server.app.params
    values = store.snapshot()
    data = [dict(p.describe(), value=values[p.name]) for p in store.table]
    return server.ok(name, f"{len(data)} parameters", body=text_table(store).splitlines(),
                     data={"params": data})


def _value_text(server: "ConsoleServer", pname: str, value) -> str:
    p = server.app.params.param(pname)
    text = f"{p.format(value)} {p.unit}".rstrip()
    # what the piece really does with a value when the hardware limits it (the LED budget
    # of the profile wins over a larger power_cap_ma, and saying only OK would hide that);
    why = server.app.param_note(pname, value)
    return text + (f" ({why})" if why else "")


def cmd_get(server: "ConsoleServer", name, args):
    pname = server.app.params.param(args[0]).name      # names are case-insensitive
    value = server.app.params.get(pname)
    return server.ok(name, _value_text(server, pname, value), data={"name": pname, "value": value})


def cmd_set(server: "ConsoleServer", name, args):
    pname = server.app.params.param(args[0]).name
    value = server.app.params.set_text(pname, args[1])
    return server.ok(name, f"{pname} = {_value_text(server, pname, value)}",
                     data={"name": pname, "value": value})


def cmd_reset(server: "ConsoleServer", name, args):
    target = None if args[0].lower() == "all" else args[0]
    server.app.params.reset(target)
    return server.ok(name, f"{target or 'all parameters'} back to default")


def cmd_save(server: "ConsoleServer", name, args):
    server.app.params.save(server.app.storage)
    return server.ok(name, "saved as the start-up values")


def cmd_preset_save(server: "ConsoleServer", name, args):
    server.app.storage.save_preset(args[0], server.app.params.snapshot())
    return server.ok(name, f"preset {args[0]} saved")


def cmd_preset_load(server: "ConsoleServer", name, args):
    warnings = server.app.params.update_from_dict(server.app.storage.load_preset(args[0]))
    skipped = f" ({len(warnings)} values skipped)" if warnings else ""
    return server.ok(name, f"preset {args[0]} loaded" + skipped, body=warnings,
                     data={"warnings": warnings})


def cmd_preset_list(server: "ConsoleServer", name, args):
    names = server.app.storage.list_presets()
    return server.ok(name, f"{len(names)} presets", body=names, data={"presets": names})


def cmd_preset_delete(server: "ConsoleServer", name, args):
    server.app.storage.delete_preset(args[0])
    return server.ok(name, f"preset {args[0]} deleted")


HANDLERS = {"list": cmd_list, "get": cmd_get, "set": cmd_set, "reset": cmd_reset,
            "save": cmd_save, "preset save": cmd_preset_save, "preset load": cmd_preset_load,
            "preset list": cmd_preset_list, "preset delete": cmd_preset_delete}
