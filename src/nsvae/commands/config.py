"""``nsvae config``: list, show and copy out the presets that ship with the package."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UserError

DESCRIPTION = """\
The presets ship inside the package (they work from any directory and in a
plain pip install). Training presets are configs for `nsvae train`; sweep
presets (and the study presets, named study-*) are for `nsvae sweep` and
`nsvae study`.
  list          every preset, its kind and the first line of its comment
  show NAME     print a preset's TOML text
  copy NAME     write it to a file (default ./NAME.toml) to edit and run:
                nsvae train NAME.toml, nsvae sweep NAME.toml, nsvae study NAME.toml"""

EPILOG = """\
examples:
  nsvae config list
  nsvae config show quick-nonsyn
  nsvae config copy study-cpu my-study.toml"""

KINDS = {"": "train", "sweeps": "sweep"}


def register(sub) -> None:
    p = sub.add_parser(
        "config",
        help="list, show and copy out the shipped presets (training, sweep and study configs)",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", choices=("list", "show", "copy"), help="what to do")
    p.add_argument("name", nargs="?", metavar="NAME", help="show, copy: the preset")
    p.add_argument("dest", nargs="?", metavar="DEST", help="copy: the file to write (default ./NAME.toml)")
    p.add_argument("--force", action="store_true", help="copy: overwrite DEST if it exists")
    p.set_defaults(run=run_config)


def presets() -> dict[str, tuple[str, str]]:
    """``{name: (kind, folder)}`` of every shipped preset: kind ``train`` or ``sweep``."""
    from ..config import shipped_names

    out: dict[str, tuple[str, str]] = {}
    for folder, kind in KINDS.items():
        for name in shipped_names(folder):
            out[name] = (kind, folder)
    return out


def preset_text(name: str) -> str:
    from ..config import shipped_text

    known = presets()
    if name not in known:
        import difflib

        close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else "; see nsvae config list"
        raise UserError(f"no preset named {name!r}{hint}")
    return shipped_text(name, known[name][1])


def summary(text: str) -> str:
    """The first comment line of a preset, without its ``#``."""
    for line in text.splitlines():
        if line.startswith("#"):
            return line.lstrip("#").strip()
    return ""


def run_config(args: argparse.Namespace) -> int:
    if args.action == "list":
        if args.name:
            raise UserError("nsvae config list takes no NAME")
        known = presets()
        width = max(len(n) for n in known)
        for name, (kind, _) in sorted(known.items(), key=lambda item: (item[1][0] != "train", item[0])):
            print(f"{name:<{width}}  {kind:<5}  {summary(preset_text(name))}")
        return 0
    if not args.name:
        raise UserError(f"nsvae config {args.action} needs a preset NAME; see nsvae config list")
    text = preset_text(args.name)
    if args.action == "show":
        if args.dest:
            raise UserError("nsvae config show takes one NAME; to write a file use nsvae config copy NAME DEST")
        print(text, end="" if text.endswith("\n") else "\n")
        return 0
    dest = Path(args.dest) if args.dest else Path(f"{args.name}.toml")
    if dest.is_dir():
        dest = dest / f"{args.name}.toml"
    if dest.exists() and not args.force:
        raise UserError(f"{dest} exists; choose another DEST or pass --force to overwrite it")
    if not dest.parent.is_dir():
        raise UserError(f"the folder {dest.parent} does not exist; create it first or choose another DEST")
    from ..atomic import atomic_write

    atomic_write(dest, lambda handle: handle.write(text.encode("utf-8")))
    kind = presets()[args.name][0]
    command = "nsvae train" if kind == "train" else "nsvae sweep"
    print(f"wrote {dest} ({kind} preset {args.name}); edit it and run {command} {dest}")
    return 0
