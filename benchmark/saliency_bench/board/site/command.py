"""``saliency-bench site``: the committed boards (and a run folder) as one site; ``run --site`` and ``check --site``."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from .build import build_site, site_bytes
from ...errors import UserError
from .section import BOARD, Section, read_section

Log = Callable[[str], None]


def committed_folders(root: Path) -> list[Path]:
    """The board folders of a checkout: ``root`` (the default model's) and each ``boards/NAME`` with a board."""
    folders = [root] if (root / BOARD).is_file() else []
    boards = root / "boards"
    if boards.is_dir():
        folders += sorted(p for p in boards.iterdir() if (p / BOARD).is_file())
    return folders


def attach_pictures(sections: Sequence[Section], registry, device: str, log: Log) -> None:
    """Give each section the harness's map source (a section whose model's weights are not shipped here gets none)."""
    from .wiring import evidence_source

    for section in sections:
        section.evidence = evidence_source(section.board, registry, device)
        if section.evidence is None:
            log(f"site: no pictures for {section.label}: its model's weights are not the ones installed here")


def summary(sections: Sequence[Section], out: Path, written: Sequence[Path]) -> str:
    """The line the command prints: what it wrote, where, and how large it is."""
    labels = ", ".join(section.label for section in sections)
    return (f"site: {len(sections)} board(s) ({labels}) in {out}: {len(written)} files, "
            f"{site_bytes(out) / 1e6:.1f} MB; open {out / 'index.html'}")


def command(args, log: Log) -> int:
    """``saliency-bench site``: every committed board (and ``--run``'s folder) as a static site in ``--out``."""
    from ...plugins import load_registry

    log(site_command(args.out, run=args.run, registry=load_registry(log), log=log))
    return 0


def site_command(out: str | Path, run: str | Path | None = None, registry=None, log: Log = print,
                 root: str | Path = ".", maps: bool = True, device: str = "auto") -> str:
    """The site of every committed board under ``root`` and of the run folder ``run``, maps pictured with ``maps``."""
    # picturing runs the models: 3 models of 37 methods took 9 minutes on 2 busy CPU cores
    from ...plugins import get_plugin_manager

    registry = registry if registry is not None else get_plugin_manager().registry()
    sections = [read_section(folder, registry) for folder in committed_folders(Path(root))]
    if run is not None:
        board = read_section(run, registry)
        board.title = f"{board.model} (run {Path(run).name})"
        sections.append(board)
    if not sections:
        raise UserError(f"no board in {Path(root).resolve()} (leaderboard.json) and no --run folder: "
                        "nothing to publish")
    if maps:
        attach_pictures(sections, registry, device, log)
    written = build_site(sections, out, registry, log)
    return summary(sections, Path(out), written)


def site_after(boards_written: Sequence[Path], registry, log: Log = print, out: str | Path = "site",
               root: str | Path = ".") -> str:
    """``run --site`` / ``check --add DIR --site``: the site of ``root``'s committed boards, plus the first folder
    the command wrote a board to when none of those folders is a committed one (a run into its own ``--out``)."""
    committed = {folder.resolve() for folder in committed_folders(Path(root))}
    folders = [Path(folder) for folder in boards_written]
    run = None if any(folder.resolve() in committed for folder in folders) or not folders else folders[0]
    return site_command(out, run=run, registry=registry, log=log, root=root)


def boards_written(written: Sequence[Path]) -> list[Path]:
    """The folders among the files a command wrote that received a board (its ``leaderboard.json``), in order."""
    folders: list[Path] = []
    for path in written:
        if Path(path).name == BOARD and Path(path).parent not in folders:
            folders.append(Path(path).parent)
    return folders
