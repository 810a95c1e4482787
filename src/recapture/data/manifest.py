"""The dataset manifest: one small YAML file naming a dataset's label set, image size and splits.

All paths in a manifest are relative to its folder (see docs/formats.md). Re-exported by
:mod:`recapture.data.formats`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

import yaml

from recapture.body.parts import LABEL_SETS
from recapture.data.errors import FormatError
from recapture.fileio import atomic_write_text, load_yaml

__all__ = ["FrozenMapping", "SplitSpec", "Manifest", "read_manifest", "write_manifest", "SPLIT_FIELDS",
           "SPLIT_EXTRAS"]

#: The folders/files every split names.
SPLIT_FIELDS: tuple[str, ...] = ("images", "layouts", "annotations", "pairs")
#: Optional keys of a split (SynthHumans: an ``invisible`` mask folder, an ``edits`` CSV); any other is an error.
SPLIT_EXTRAS: tuple[str, ...] = ("invisible", "edits")
_TOP_FIELDS: tuple[str, ...] = ("name", "label_set", "image_size", "keypoint_offset", "splits")


class FrozenMapping(Mapping[str, Any]):
    """A small immutable, hashable and picklable mapping (insertion order kept)."""

    __slots__ = ("_items", "_dict")

    def __init__(self, items: Mapping[str, Any] | None = None) -> None:
        pairs = tuple((items or {}).items())
        object.__setattr__(self, "_items", pairs)
        object.__setattr__(self, "_dict", dict(pairs))

    def __getitem__(self, key: str) -> Any:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __hash__(self) -> int:
        return hash(self._items)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("FrozenMapping is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMapping, (self._dict,))

    def __repr__(self) -> str:
        return f"FrozenMapping({self._dict!r})"


@dataclass(frozen=True)
class SplitSpec:
    """Paths of one split, relative to the manifest's folder; ``extras`` holds any other keys."""

    images: str
    layouts: str
    annotations: str
    pairs: str
    extras: Mapping[str, str] = field(default_factory=FrozenMapping)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extras", FrozenMapping(self.extras))


@dataclass(frozen=True)
class Manifest:
    """A dataset description read from YAML; ``path`` is the manifest file itself."""

    path: Path
    name: str
    label_set: str
    image_size: tuple[int, int]
    keypoint_offset: tuple[int, int]
    splits: Mapping[str, SplitSpec]

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))
        object.__setattr__(self, "image_size", tuple(self.image_size))
        object.__setattr__(self, "keypoint_offset", tuple(self.keypoint_offset))
        object.__setattr__(self, "splits", FrozenMapping(self.splits))

    def resolve(self, relative: str) -> Path:
        """``relative`` joined to the manifest's folder."""
        return self.path.parent / relative

    def split(self, name: str) -> SplitSpec:
        """The split called ``name``; FormatError listing the splits otherwise."""
        try:
            return self.splits[name]
        except KeyError:
            raise FormatError(self.path, f"no split {name!r}; splits: {', '.join(self.splits)}",
                              field="splits") from None


def _key_lines(node: yaml.Node | None, prefix: str = "") -> dict[str, int]:
    """Dotted key -> 1-based line of that key in the YAML document."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, key + "."))
    return lines


class _Parser:
    """Turns the loaded YAML object into a :class:`Manifest`, naming the offending key on error."""

    def __init__(self, path: Path, lines: dict[str, int]) -> None:
        self.path = path
        self.lines = lines

    def error(self, key: str, message: str) -> FormatError:
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        return FormatError(self.path, message, self.lines.get(key, self.lines.get(parent)), key)

    def mapping(self, value: Any, key: str) -> dict[Any, Any]:
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping, got {type(value).__name__}")
        return value

    def string(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty string, got {value!r}")
        return value

    def int_pair(self, value: Any, key: str, positive: bool) -> tuple[int, int]:
        ok = (isinstance(value, (list, tuple)) and len(value) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
        if not ok or (positive and min(value) <= 0):
            kind = "positive integers" if positive else "integers"
            raise self.error(key, f"expected a list of 2 {kind}, got {value!r}")
        return int(value[0]), int(value[1])

    def fields(self, data: dict[Any, Any], required: tuple[str, ...], allowed: tuple[str, ...] | None,
               prefix: str) -> None:
        for key in required:
            if key not in data:
                raise self.error(prefix.rstrip(".") or key, f"missing field {prefix}{key!r}")
        if allowed is not None:
            unknown = [k for k in data if k not in allowed]
            if unknown:
                raise self.error(f"{prefix}{unknown[0]}", f"unknown key {unknown[0]!r}; allowed: {', '.join(allowed)}")

    def split(self, name: str, value: Any) -> SplitSpec:
        prefix = f"splits.{name}."
        data = self.mapping(value, f"splits.{name}")
        self.fields(data, SPLIT_FIELDS, SPLIT_FIELDS + SPLIT_EXTRAS, prefix)
        values = {str(k): self.string(v, f"{prefix}{k}") for k, v in data.items()}
        extras = {k: v for k, v in values.items() if k not in SPLIT_FIELDS}
        return SplitSpec(*(values[k] for k in SPLIT_FIELDS), extras=extras)

    def manifest(self, data: Any) -> Manifest:
        data = self.mapping(data, "<document>")
        self.fields(data, ("name", "label_set", "image_size", "splits"), _TOP_FIELDS, "")
        label_set = self.string(data["label_set"], "label_set")
        if label_set not in LABEL_SETS:
            raise self.error("label_set", f"unknown label set {label_set!r}; valid: {', '.join(LABEL_SETS)}")
        splits_data = self.mapping(data["splits"], "splits")
        if not splits_data:
            raise self.error("splits", "a manifest needs at least one split")
        splits = {self.string(k, "splits"): self.split(str(k), v) for k, v in splits_data.items()}
        return Manifest(
            path=self.path,
            name=self.string(data["name"], "name"),
            label_set=label_set,
            image_size=self.int_pair(data["image_size"], "image_size", positive=True),
            keypoint_offset=self.int_pair(data.get("keypoint_offset", [0, 0]), "keypoint_offset", positive=False),
            splits=splits,
        )


def read_manifest(path: str | Path) -> Manifest:
    """Parse and check a manifest YAML; FormatError naming the key (and its line) on bad content."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError(path, "file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(path, f"cannot read manifest ({exc})") from None
    try:
        lines = _key_lines(yaml.compose(text, Loader=yaml.SafeLoader))
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = None if mark is None else mark.line + 1
        raise FormatError(path, f"invalid YAML: {getattr(exc, 'problem', None) or exc}", line) from None
    return _Parser(path, lines).manifest(data)


def manifest_dict(manifest: Manifest) -> dict[str, Any]:
    """The YAML-ready content of ``manifest`` (without its path)."""
    return {
        "name": manifest.name,
        "label_set": manifest.label_set,
        "image_size": list(manifest.image_size),
        "keypoint_offset": list(manifest.keypoint_offset),
        "splits": {
            name: {**{k: getattr(spec, k) for k in SPLIT_FIELDS}, **dict(spec.extras)}
            for name, spec in manifest.splits.items()
        },
    }


def write_manifest(path: str | Path, name: str, label_set: str, image_size: tuple[int, int],
                   splits: Mapping[str, SplitSpec], keypoint_offset: tuple[int, int] = (0, 0)) -> None:
    """Write a manifest YAML; the content is checked by the same rules :func:`read_manifest` applies."""
    path = Path(path)
    manifest = Manifest(path, name, label_set, tuple(operator.index(v) for v in image_size),
                        tuple(operator.index(v) for v in keypoint_offset), splits)
    content = manifest_dict(manifest)
    _Parser(path, {}).manifest(content)
    atomic_write_text(path, yaml.safe_dump(content, sort_keys=False))
