"""The demo visits: the labelled photos of `../shared/faces` replayed as two days at one store.

Day one, everyone's first photo; day two, the second photo of everyone who has one. So the expected
report is known: every person is a unique visitor, and everyone with a second photo returned once.
The end-to-end test asserts exactly these numbers; `make dev` feeds the same days to the demo edge.
"""

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass(frozen=True)
class DemoDay:
    folder: Path
    clock_start: datetime
    people: tuple[str, ...]


def labelled_photos(faces_dir: Path) -> dict[str, list[Path]]:
    """Photos by person: one folder per person (`misc/` holds group shots and is left out)."""
    people = {}
    for folder in sorted(p for p in faces_dir.iterdir() if p.is_dir() and p.name != "misc"):
        photos = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if photos:
            people[folder.name] = photos
    return people


def build_demo_days(faces_dir: Path, work_dir: Path, day_one: datetime, day_two: datetime) -> list[DemoDay]:
    """Two folders of links to the photos, one per simulated day."""
    people = labelled_photos(faces_dir)
    days = []
    for index, clock_start in enumerate((day_one, day_two)):
        folder = work_dir / f"day{index + 1}"
        folder.mkdir(parents=True, exist_ok=True)
        present = []
        for person, photos in people.items():
            if len(photos) > index:
                link = folder / f"{person}{photos[index].suffix.lower()}"
                if not link.exists():
                    link.symlink_to(photos[index].resolve())
                present.append(person)
        days.append(DemoDay(folder, clock_start, tuple(present)))
    return days
