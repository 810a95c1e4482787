"""Layout parsers for in-the-wild photos: user PNGs, TorchScript/ONNX models, label-set merges."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch

from recapture.body.parts import LIP20, MARKET7, merge_lip20
from recapture.data.formats import FormatError, write_layout
from recapture.pipelines.parsing import FileLayoutParser, ModelLayoutParser, ParserInput, merge_to

FACE, UPPER = LIP20.index("face"), LIP20.index("upper_clothes")
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:FutureWarning")


class _ColourParser(torch.nn.Module):
    """Face where the network's first input channel is high, upper clothes where its last one is; the
    logits come out at half resolution."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.full((1, 20, x.shape[2], x.shape[3]), -10.0)
        logits[:, 13] = x[:, 0]  # face
        logits[:, 5] = x[:, 2]  # upper clothes
        return torch.nn.functional.avg_pool2d(logits, 2)


class _SchpLike(torch.nn.Module):
    """SCHP's nested output [[parsing, fusion], [edge]] with a useless first parsing head."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = _ColourParser()

    def forward(self, x: torch.Tensor) -> List[List[torch.Tensor]]:
        fusion = self.inner(x)
        return [[-fusion, fusion], [fusion[:, :2]]]


def _blue_red_photo() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    photo = np.zeros((60, 40, 3), np.uint8)
    photo[:, :20, 2] = 255  # blue left half
    photo[:, 20:, 0] = 255  # red right half
    mask = np.zeros((60, 40), np.float32)
    mask[5:55, 4:36] = 1
    return photo, np.full((18, 2), -1.0), mask


def _save(module: torch.nn.Module, path: Path) -> Path:
    if path.suffix == ".pt2":
        torch.export.save(torch.export.export(module, (torch.zeros(1, 3, 64, 64),)), str(path))
    else:
        torch.jit.script(module).save(str(path))
    return path


@pytest.mark.parametrize("module,name", [(_ColourParser(), "parser.pt"), (_SchpLike(), "parser.pt"),
                                         (_SchpLike(), "parser.pt2")], ids=["plain", "schp-nested", "export"])
def test_model_parser_reads_bgr_and_pastes_back(tmp_path: Path, module: torch.nn.Module, name: str) -> None:
    path = _save(module, tmp_path / name)
    photo, keypoints, mask = _blue_red_photo()
    labels = ModelLayoutParser(path, input=ParserInput(size=(64, 64), margin=0.0))(photo, keypoints, mask)
    assert labels.shape == (60, 40) and labels.dtype == np.uint8
    # BGR input: blue is the network's first channel -> face; red its last -> upper clothes.
    assert (labels[8:52, 6:17] == FACE).all() and (labels[8:52, 23:34] == UPPER).all()
    assert (labels[:5] == 0).all() and (labels[:, :4] == 0).all()  # outside the person box
    rgb = ModelLayoutParser(path, input=ParserInput(size=(64, 64), bgr=False, mean=(0.485, 0.456, 0.406),
                                                    std=(0.229, 0.224, 0.225), margin=0.0))
    assert (rgb(photo, keypoints, mask)[8:52, 6:17] == UPPER).all()


def test_model_parser_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        ModelLayoutParser(tmp_path / "absent.pt")
    (tmp_path / "parser.pkl").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"\.onnx"):
        ModelLayoutParser(tmp_path / "parser.pkl")
    (tmp_path / "parser.onnx").write_bytes(b"x")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ImportError, match="pip install onnxruntime"):
        ModelLayoutParser(tmp_path / "parser.onnx")
    wrong = tmp_path / "wrong.pt"
    torch.jit.script(torch.nn.Conv2d(3, 7, 1)).save(str(wrong))
    photo, keypoints, mask = _blue_red_photo()
    with pytest.raises(ValueError, match=r"\(1, 20, h, w\)"):
        ModelLayoutParser(wrong, input=ParserInput(size=(32, 32)))(photo, keypoints, mask)


def test_file_parser_resizes_and_checks(tmp_path: Path) -> None:
    labels = np.zeros((30, 20), np.uint8)
    labels[:15, :10] = FACE
    write_layout(tmp_path / "half.png", labels, LIP20)
    parsed = FileLayoutParser(tmp_path / "half.png")(np.zeros((60, 40, 3), np.uint8), None, None)
    assert parsed.shape == (60, 40)
    np.testing.assert_array_equal(parsed, np.kron(labels, np.ones((2, 2), np.uint8)))
    with pytest.raises(ValueError, match="aspect ratio"):
        FileLayoutParser(tmp_path / "half.png")(np.zeros((60, 60, 3), np.uint8), None, None)
    write_layout(tmp_path / "lip.png", np.full((4, 4), 15, np.uint8))
    with pytest.raises(FormatError, match="out of range"):
        FileLayoutParser(tmp_path / "lip.png", label_set="market7")


def test_merge_to() -> None:
    labels = np.arange(20, dtype=np.uint8).reshape(4, 5)
    np.testing.assert_array_equal(merge_to(labels, "market7"), merge_lip20(labels, "market7"))
    assert MARKET7.names[merge_to(labels, MARKET7)[0, 2]] == "head"  # LIP-20 label 2 is hair
    np.testing.assert_array_equal(merge_to(labels, "lip20"), labels)
    with pytest.raises(ValueError, match="only LIP-20"):
        merge_to(np.zeros((2, 2), np.uint8), "lip20", source="market7")
