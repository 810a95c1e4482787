"""The bundled `default` model: loads offline, has the documented shape, and its golden output holds."""

from __future__ import annotations

import numpy as np
import torch

from recapture.body.keypoints import KEYPOINT_INDEX, keypoints_to_heatmaps
from recapture.body.parts import LIP20
from recapture.hub import bundled_models, load_generator
from test_layout_prior import mannequin_keypoints, mannequin_layout

SIZE = (256, 176)


def mannequin_input() -> tuple[torch.Tensor, ...]:
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


def test_default_model_is_the_documented_real_photo_model() -> None:
    """Shape and kind of the bundled `default` (its golden output is pinned in test_bundled.py)."""
    assert "default" in bundled_models()
    loaded = load_generator("default")
    config = loaded.config
    assert config.output_size == SIZE and config.network_size == (128, 88) and config.label_set == "lip20"
    assert config.geometric_prior and config.appearance == "correspondence"
    assert "CCP" in loaded.metadata["trained_on"] and "SynthHumans" in loaded.metadata["trained_on"]


def test_default_model_copies_the_mannequin_into_the_new_pose() -> None:
    """The re-posed mannequin keeps its palette colours: the output is near the source colours of the
    parts it shows (a generator that paints from scratch would drift), and the moved arm is drawn."""
    loaded = load_generator("default")
    image, layout, source_pose, target_pose, source_kp, target_kp = mannequin_input()
    with torch.no_grad():
        output = loaded.generator(image, layout, source_pose, target_pose, source_keypoints=source_kp,
                                  target_keypoints=target_kp)
    assert output.image.shape == (1, 3, *SIZE) and torch.isfinite(output.image).all()
    labels = output.layout_logits.argmax(1)[0]
    arm = labels == LIP20.index("right_arm")
    assert arm[100:140, 40:60].any()
    palette = torch.from_numpy(np.asarray(LIP20.palette, np.float32)) / 127.5 - 1.0
    shown = labels == LIP20.index("upper_clothes")
    colour = output.image[0][:, shown].mean(dim=1)
    assert torch.allclose(colour, palette[LIP20.index("upper_clothes")], atol=0.15), colour
