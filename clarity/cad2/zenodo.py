"""Turn the downloaded CAD2 Task 2 packages into the dataset layout the recipe reads.

Expected in the download folder (the packages of the challenge's Zenodo record):

- `CadenzaWoodwind.zip`: top folder `CadenzaWoodwind/`, stems and mixtures of each piece.
- `EnsembleSet_Mix_1.zip`: top folder `EnsembleSet/`, `<piece>/Mix_1/<instrument>.flac`.
- `metadata.zip`: top folder `metadata/`, including `music_tracks.train.json`
  (track -> {"dataset", "stems_path": [paths in the dataset folder], "mixture_path"}) and
  `music.valid.to_generate.json` (segment name -> {"source_<n>": {"source_dataset", "track",
  "start", "duration", ...}, "mixture_target" (or "mixture"): {"track": path under the audio
  folder}}).

Results, under `root`: `audio/train/<stems and mixtures as in their dataset>`,
`audio/valid/<segment>/<file name of each stem>` plus the segment's mixture (the sum of its
cut stems), and `metadata/` (a copy of the metadata folder). A package already unzipped is not
unzipped again and files already in place are not written again, so the preparation can be
re-run after an interruption.
"""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from clarity.utils.flac_encoder import save_flac_signal, write_atomically
from clarity.utils.json_files import read_json

# Package name -> top folder inside it.
PACKAGES = {
    "CadenzaWoodwind": "CadenzaWoodwind",
    "EnsembleSet_Mix_1": "EnsembleSet",
    "metadata": "metadata",
}
MIXTURE_TARGET_KEYS = ("mixture_target", "mixture")


def unpack_packages(download_dir: str | Path) -> None:
    """Unzip each package whose top folder is not in `download_dir` yet.

    Each package is unzipped into a temporary folder and moved into place, so an interrupted
    unzip leaves nothing half-done behind.

    Raises:
        ValueError: a package is neither unzipped nor present as a zip, or a zip does not hold
            the expected top folder.
    """
    download_dir = Path(download_dir)
    missing = [
        f"{package}.zip"
        for package, folder in PACKAGES.items()
        if not (download_dir / folder).is_dir() and not (download_dir / f"{package}.zip").is_file()
    ]
    if missing:
        raise ValueError(
            f"path.zenodo_download_path={download_dir}: package(s) not found: {missing}"
        )
    for package, folder in PACKAGES.items():
        if (download_dir / folder).is_dir():
            continue
        archive = download_dir / f"{package}.zip"
        with tempfile.TemporaryDirectory(dir=download_dir, prefix=f".{package}.") as temporary:
            with zipfile.ZipFile(archive) as zipped:
                for member in tqdm(zipped.infolist(), desc=f"Extracting {archive.name}"):
                    zipped.extract(member, temporary)
            extracted = Path(temporary) / folder
            if not extracted.is_dir():
                raise ValueError(f"{archive}: expected a top folder {folder!r} inside the zip")
            extracted.rename(download_dir / folder)


def _source_file(download_dir: Path, dataset: str, relative: str, where: str) -> Path:
    path = download_dir / dataset / relative
    if not path.is_file():
        raise ValueError(f"{where}: file not found: {path}")
    return path


def copy_training_audio(download_dir: str | Path, music_dir: str | Path) -> None:
    """Copy the training stems and mixtures listed in `music_tracks.train.json` to
    `<music_dir>/train/`, skipping files already there."""
    download_dir, music_dir = Path(download_dir), Path(music_dir)
    tracks_file = download_dir / "metadata" / "music_tracks.train.json"
    tracks = read_json(tracks_file, "training tracks")
    for name, info in tqdm(tracks.items(), desc="Copying training audio"):
        where = f"{tracks_file}: track {name!r}"
        for key in ("dataset", "stems_path", "mixture_path"):
            if key not in info:
                raise ValueError(f"{where}: missing key {key!r}")
        for relative in [*info["stems_path"], info["mixture_path"]]:
            target = music_dir / "train" / relative
            if target.is_file():
                continue
            source = _source_file(download_dir, info["dataset"], relative, where)
            write_atomically(
                target, lambda temporary, source=source: shutil.copyfile(source, temporary)
            )


def _read_cut(path: Path, start: float, duration: float) -> tuple[np.ndarray, int]:
    """`duration` seconds from `start` (s) of an audio file: float32 (samples, channels), Hz."""
    with sf.SoundFile(path) as audio:
        sample_rate = audio.samplerate
        audio.seek(int(start * sample_rate))
        return audio.read(frames=int(duration * sample_rate), dtype="float32"), sample_rate


def _valid_stem_name(track: str) -> str:
    """File path of a cut stem inside its segment folder: the track path without its first
    folder (the piece) and without the `Mix_1` microphone folder."""
    return "/".join(track.replace("/Mix_1", "").split("/")[1:])


def cut_validation_audio(download_dir: str | Path, music_dir: str | Path) -> None:
    """Cut the validation segments of `music.valid.to_generate.json` into
    `<music_dir>/valid/<segment>/` and write each segment's mixture (sum of its stems).

    Segments whose stems and mixture all exist already are skipped.
    """
    download_dir, music_dir = Path(download_dir), Path(music_dir)
    segments_file = download_dir / "metadata" / "music.valid.to_generate.json"
    segments = read_json(segments_file, "validation segments")
    for name, entries in tqdm(segments.items(), desc="Creating validation audio"):
        where = f"{segments_file}: segment {name!r}"
        target_keys = [key for key in MIXTURE_TARGET_KEYS if key in entries]
        if not target_keys:
            raise ValueError(f"{where}: missing key {MIXTURE_TARGET_KEYS[0]!r}")
        mixture_target = music_dir / entries[target_keys[0]]["track"]
        sources = {key: info for key, info in entries.items() if key not in MIXTURE_TARGET_KEYS}
        targets = {
            key: music_dir / "valid" / name / _valid_stem_name(info["track"])
            for key, info in sources.items()
        }
        if mixture_target.is_file() and all(target.is_file() for target in targets.values()):
            continue
        stems, sample_rates = [], set()
        for key, info in sources.items():
            for field in ("source_dataset", "track", "start", "duration"):
                if field not in info:
                    raise ValueError(f"{where} key {key!r}: missing key {field!r}")
            path = _source_file(
                download_dir, info["source_dataset"], info["track"], f"{where} key {key!r}"
            )
            stem, sample_rate = _read_cut(path, info["start"], info["duration"])
            stems.append(stem)
            sample_rates.add(sample_rate)
            if not targets[key].is_file():
                save_flac_signal(stem, targets[key], sample_rate, sample_rate)
        if len(sample_rates) != 1 or len({stem.shape for stem in stems}) != 1:
            raise ValueError(f"{where}: the stems differ in sample rate or length, cannot mix them")
        save_flac_signal(np.sum(stems, axis=0), mixture_target, sample_rate, sample_rate)


def copy_metadata(download_dir: str | Path, metadata_dir: str | Path) -> None:
    """Copy every file of the unzipped metadata folder into `metadata_dir`."""
    source = Path(download_dir) / "metadata"
    files = [path for path in sorted(source.rglob("*")) if path.is_file()]
    for path in tqdm(files, desc="Copying metadata"):
        target = Path(metadata_dir) / path.relative_to(source)
        write_atomically(target, lambda temporary, path=path: shutil.copyfile(path, temporary))


def prepare_dataset(download_dir: str | Path, root: str | Path, music_dir: str | Path,
                    metadata_dir: str | Path) -> None:
    """Unzip the packages, copy the training audio, cut the validation audio, copy metadata."""
    unpack_packages(download_dir)
    Path(root).mkdir(parents=True, exist_ok=True)
    copy_training_audio(download_dir, music_dir)
    cut_validation_audio(download_dir, music_dir)
    copy_metadata(download_dir, metadata_dir)
