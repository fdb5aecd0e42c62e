"""Generation configs: TOML files shipped in the package (A, B, C, GRUV, DEMO) or a user path.

A config names the audio side (sample rate, block size, feature kind, mu-law),
the network (``hidden`` units x ``depth`` stacked LSTM layers) and training
settings.  Run folders are named ``<hidden>_<depth>_<dataset>`` as in boii.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path

from auralize.errors import AuralizeError
from auralize.generate.features import KINDS, BlockCodec, feature_size
from auralize.readers import read_toml


@dataclass(frozen=True)
class GenConfig:
    """One generation config (see the shipped ``configs/*.toml`` for the fields)."""

    name: str
    sample_rate: int = 8000
    block_size: int = 512
    features: str = "hfft"
    mu: float = 0.0
    quantize_bits: int = 0
    hidden: int = 250
    depth: int = 1
    seq_len: int = 40
    batch_size: int = 16
    lr: float = 1e-3
    optimizer: str = "rmsprop"
    max_epochs: int = 100
    val_fraction: float = 0.1
    description: str = ""
    source: str = field(default="", compare=False)

    @property
    def feature_size(self) -> int:
        return feature_size(self.features, self.block_size)

    @property
    def codec(self) -> BlockCodec:
        """The audio <-> feature transform of this config."""
        return BlockCodec(self.features, self.mu, self.quantize_bits)

    def run_name(self, dataset: str) -> str:
        """boii's run folder name: ``<hidden>_<depth>_<dataset>``."""
        return f"{self.hidden}_{self.depth}_{dataset}"

    def data_tag(self) -> str:
        """Folder name of this config's converted data (shared by configs with equal features)."""
        tag = f"{self.features}_{self.sample_rate}hz_{self.block_size}"
        tag += f"_mu{self.mu:g}" if self.mu else ""
        return tag + (f"_q{self.quantize_bits}" if self.quantize_bits else "")

    def to_dict(self) -> dict:
        return asdict(self)


def shipped_configs() -> dict[str, Path]:
    """``{NAME: path}`` of the configs shipped in the package."""
    root = resources.files("auralize.generate") / "configs"
    return {Path(str(p)).stem.upper(): Path(str(p)) for p in root.iterdir()
            if str(p).endswith(".toml")}


def _from_toml(path: Path) -> GenConfig:
    raw = read_toml(path, "a generation config")
    flat: dict = {}
    for key, value in raw.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    flat.setdefault("name", path.stem)
    known = set(GenConfig.__dataclass_fields__) - {"source"}
    unknown = sorted(set(flat) - known)
    if unknown:
        raise AuralizeError(f"config {str(path)!r}: unknown keys {', '.join(unknown)} "
                            f"(known: {', '.join(sorted(known))})")
    try:
        cfg = GenConfig(**flat, source=str(path))
        numbers = {name: int(getattr(cfg, name)) for name in (
            "sample_rate", "block_size", "hidden", "depth", "seq_len", "batch_size",
            "quantize_bits", "max_epochs")} | {name: float(getattr(cfg, name)) for name in (
            "mu", "lr", "val_fraction")}
    except (TypeError, ValueError) as exc:
        raise AuralizeError(f"config {str(path)!r}: {exc}") from None
    if cfg.features not in KINDS:
        raise AuralizeError(f"config {str(path)!r}: features must be one of {KINDS}")
    for name in ("sample_rate", "block_size", "hidden", "depth", "seq_len", "batch_size"):
        if numbers[name] < 1:
            raise AuralizeError(f"config {str(path)!r}: {name} must be positive")
    if not 0 <= numbers["quantize_bits"] <= 24:
        raise AuralizeError(f"config {str(path)!r}: quantize_bits must be 0 (off) to 24")
    if cfg.block_size < 2:
        raise AuralizeError(f"config {str(path)!r}: block_size must be at least 2")
    return cfg


# boii selected its networks by number (`train.py 0`, `generate.py 0 1 2`).
BOII_NUMBERS = {"0": "A", "1": "B", "2": "C"}


def shipped_config_path(name: str) -> Path:
    """The TOML file of a shipped config (name case-insensitive, or boii's 0/1/2).

    Raises
    ------
    AuralizeError
        Not a shipped name; the message lists them.
    """
    shipped = shipped_configs()
    key = BOII_NUMBERS.get(str(name).strip(), str(name).upper())
    if key not in shipped:
        raise AuralizeError(f"no shipped config named {name!r}: use one of "
                            f"{', '.join(sorted(shipped))} (or boii's 0, 1, 2 for A, B, C)")
    return shipped[key]


def load_config(name_or_path: str | Path) -> GenConfig:
    """A shipped config by name (case-insensitive: A, B, C, GRUV, DEMO; boii's 0, 1, 2 for
    A, B, C) or a TOML file by path.

    Raises
    ------
    AuralizeError
        Neither a shipped name nor a readable file; the message lists the shipped names.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if path.is_file():  # a user's file wins over a shipped name
        return _from_toml(path)
    try:
        shipped = shipped_config_path(text)
    except AuralizeError:
        raise AuralizeError(
            f"no config named {text!r}: use one of {', '.join(sorted(shipped_configs()))} "
            "(boii's 0, 1, 2 for A, B, C) or the path of a TOML file") from None
    return _from_toml(shipped)
