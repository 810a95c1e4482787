"""The bundled `default` model: loads offline, has the documented shape, and its golden output holds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recapture.body.keypoints import KEYPOINT_INDEX, keypoints_to_heatmaps
from recapture.body.parts import LIP20
from recapture.hub import bundled_models, load_generator
from test_layout_prior import mannequin_keypoints, mannequin_layout

SIZE = (256, 176)
#: Statistics of the golden output (this file's golden_statistics on the bundled weights), tolerance below:
#: output image mean per channel and std in [-1, 1], and the share of Ŝ_B's pixels per part group.
GOLDEN = {"image_mean": (0.4453, 0.3702, 0.3844), "image_std": 0.4698, "upper_clothes": 0.0858, "arms": 0.0574,
          "legs": 0.0576, "face": 0.0193}
TOLERANCE = {"image_mean": 0.005, "image_std": 0.005, "upper_clothes": 0.002, "arms": 0.002, "legs": 0.002, "face": 0.002}


def golden_input() -> tuple[torch.Tensor, ...]:
    """The mannequin of test_layout_prior at 256x176 in palette colours, re-posed (arm down, shifted)."""
    source = mannequin_keypoints(scale=4.0, shift=(1.5, 1.5))
    target = mannequin_keypoints(scale=4.0, shift=(5.5, -2.5))
    target[KEYPOINT_INDEX["right_elbow"]] = (100, 50)
    target[KEYPOINT_INDEX["right_wrist"]] = (140, 48)
    labels = torch.from_numpy(mannequin_layout(source, SIZE, 4.0).astype(np.int64))
    image = torch.from_numpy(np.asarray(LIP20.palette, np.float32))[labels].permute(2, 0, 1) / 127.5 - 1.0
    image[:, labels == 0] = 0.8
    kps = [torch.as_tensor(k, dtype=torch.float32)[None] for k in (source, target)]
    poses = [keypoints_to_heatmaps(k, SIZE)[None] for k in (source, target)]
    return image[None], LIP20.one_hot(labels)[None], poses[0], poses[1], kps[0], kps[1]


def golden_statistics(generator: torch.nn.Module) -> dict[str, object]:
    image, layout, source_pose, target_pose, source_kp, target_kp = golden_input()
    with torch.no_grad():
        output = generator(image, layout, source_pose, target_pose, source_keypoints=source_kp,
                           target_keypoints=target_kp)
    labels = output.layout_logits.argmax(1)[0]
    share = {name: float(sum((labels == LIP20.index(p)).float().mean() for p in parts))
             for name, parts in (("upper_clothes", ("upper_clothes",)), ("arms", ("left_arm", "right_arm")),
                                 ("legs", ("left_leg", "right_leg")), ("face", ("face",)))}
    return {"image_mean": tuple(float(v) for v in output.image[0].mean(dim=(1, 2))),
            "image_std": float(output.image.std()), **share}


@pytest.mark.skipif("default" not in bundled_models(), reason="the default weights are not in this copy")
def test_default_model_loads_offline_and_its_golden_output_holds() -> None:
    loaded = load_generator("default")
    config = loaded.config
    assert config.output_size == SIZE and config.network_size == (128, 88) and config.label_set == "lip20"
    assert config.geometric_prior and loaded.metadata.get("trained_on", "").startswith("SynthHumans")
    found = golden_statistics(loaded.generator)
    for key, expected in GOLDEN.items():
        got = found[key]
        assert np.allclose(got, expected, atol=TOLERANCE[key]), (key, got, expected)
