"""Speed and flicker of ``recapture video`` (issue 16): a real photo composited into its own scene, frame by frame.

    .venv/bin/python benchmarks/video.py [--photo PATH] [--frames 31] [--threads 1] [--model default]

The source is a CCP *training* photo (``../shared/data/ccp/photos/0150.jpg``, Apache-2.0; never the held-out
0905-1004) with the bundled ``default`` model, MediaPipe pose and segmentation and the default parser, exactly
as ``recapture video`` runs it (:func:`recapture.pipelines.video.recapture_photo_video`, output capped at 1080
px). The reference clip is built from the pose presets: ``--frames`` poses interpolated front -> walking ->
hand_up -> front (:func:`interpolate_poses`), each drawn as a skeleton into a 256x176 frame of an MP4 at 15
FPS; a replay estimator gives back the drawn keypoints (so the reference's pose estimation, ``track``, is not
MediaPipe's and is not part of the frames/s). A second, still clip (the front pose in every frame) gives the
flicker floor.

Reported (JSON + Markdown in benchmarks/results/video.*): frames/s of the per-frame work (geometric +
appearance + composite + encode) and end to end (photo stages and inpainting included); per-frame seconds of
each stage; the flicker of the written file (mean absolute frame-to-frame change, 0-255, in the static
background and inside the person; :class:`recapture.pipelines.video_io.FlickerMeter`) for the moving and the
still clip; and, as a same-run baseline, the per-frame render time with and without the once-per-video
source work (:func:`recapture.pipelines.video.composited_frames` ``reuse_source``), whose frames must be equal.
Threads and the 1-minute load average (before and after) are recorded: the 2-core machine is shared.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from recapture.fileio import atomic_write_text
from recapture.models.layout_ops import majority_layout
from recapture.pipelines.framing import source_window
from recapture.pipelines.photo import PhotoModels, PhotoOptions, PreparedPhoto, draw_keypoints, prepare_photo
from recapture.pipelines.pose_estimation import PoseEstimate
from recapture.pipelines.poses import preset_library
from recapture.pipelines.recapture import Recapturer
from recapture.pipelines.video import composited_frames, interpolate_poses, recapture_photo_video
from recapture.pipelines.video_io import write_video
from recapture.pipelines.inpainting import inpaint_background

ROOT = Path(__file__).resolve().parents[1]
PHOTO = ROOT.parent / "shared" / "data" / "ccp" / "photos" / "0150.jpg"
CLIP_SIZE = (256, 176)
CLIP_FPS = 15.0
PER_FRAME = ("geometric", "appearance", "composite", "encode")


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


class Replay:
    """An estimator giving back the clip's known keypoints, one frame per call, in order."""

    def __init__(self, poses: np.ndarray) -> None:
        self.poses, self.index = poses, 0

    def __call__(self, image: np.ndarray) -> PoseEstimate:
        keypoints = self.poses[self.index]
        self.index += 1
        return PoseEstimate(keypoints=keypoints, confidence=np.ones(18), landmarks=np.zeros((33, 4)))


def reference_clip(path: Path, poses: np.ndarray) -> Path:
    """An MP4 of the poses drawn as skeletons (what the reference would show)."""
    blank = np.full((*CLIP_SIZE, 3), 40, np.uint8)
    write_video(path, (draw_keypoints(blank, keypoints) for keypoints in poses), CLIP_FPS)
    return path


def run(models: PhotoModels, photo: Path, poses: np.ndarray, folder: Path, name: str) -> dict:
    """``recapture video`` of ``photo`` with a clip of ``poses``: sizes, seconds, frames/s, flicker."""
    reference = reference_clip(folder / f"{name}-reference.mp4", poses)
    start, cpu = time.perf_counter(), time.process_time()
    result = recapture_photo_video(models, photo, reference, folder / f"{name}.mp4", estimator=Replay(poses),
                                   progress=False)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    timings = result.timings or {}
    per_frame = sum(timings.get(stage, 0.0) for stage in PER_FRAME)
    return {"clip": name, "frames": result.frames, "fps": result.fps, "size": list(result.size or ()),
            "framing": result.framing, "people": result.people, "parser": result.parser,
            "wall_s": round(wall, 2), "frames_per_s_per_frame_work": round(result.frames / per_frame, 3),
            "frames_per_s_end_to_end": round(result.frames / wall, 3),
            "cpu_s_per_frame_end_to_end": round(cpu / result.frames, 3),
            "seconds_per_frame": {stage: round(timings.get(stage, 0.0) / result.frames, 4) for stage in PER_FRAME},
            "once_s": {k: round(v, 3) for k, v in timings.items() if k not in PER_FRAME},
            "flicker_background": round(result.flicker[0], 3) if result.flicker else None,
            "flicker_person": round(result.flicker[1], 3) if result.flicker else None,
            "warnings": list(result.messages)}


def reuse_baseline(models: PhotoModels, photo: Path, poses: np.ndarray, frames: int) -> dict:
    """Per-frame render CPU seconds (this process, all threads) with and without the once-per-video source work,
    on the same frames: CPU time, not wall time, since the shared machine's load moves wall times by more than
    the difference."""
    options = PhotoOptions(max_side=1080)
    prepared = prepare_photo(models, photo, poses[:frames], options)
    background = inpaint_background(prepared.decoded.photo, prepared.segmented.person_mask)
    seconds, images = {}, {}
    for reuse in (False, True, True, False, False, True):  # alternated: the shared machine's load drifts
        start = time.process_time()
        made = [c.image for c in composited_frames(models, prepared, background, options, reuse_source=reuse)]
        seconds.setdefault(reuse, []).append((time.process_time() - start) / len(made))
        images[reuse] = made
    equal = all(np.array_equal(a, b) for a, b in zip(images[True], images[False]))
    return {"frames": frames, "cpu_s_per_frame_without_reuse": round(statistics.median(seconds[False]), 4),
            "cpu_s_per_frame_with_reuse": round(statistics.median(seconds[True]), 4), "frames_equal": equal,
            **source_costs(models, prepared, background, options)}


def median_seconds(work: Callable[[], object], repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 4)


def source_costs(models: PhotoModels, prepared: PreparedPhoto, background: np.ndarray, options: PhotoOptions) -> dict:
    """Seconds of the source-only pieces of one frame: those done once per video (the photo-resolution window,
    the correspondence source encoder) and the one still done per frame (the source layout's majority one-hot
    inside ``models/correspondence.py``)."""
    recapturer, framed = models.recapturer, prepared.framed
    network = recapturer.generator.appearance
    inputs: list[torch.Tensor] = []
    hook = network.encoder.register_forward_pre_hook(lambda _, args: inputs.append(args[0]))
    next(composited_frames(models, prepared, background, options, reuse_source=False))
    hook.remove()
    window = source_window(recapturer, framed, prepared.decoded.photo)
    size = window.image.shape[:2]
    labels = torch.from_numpy(cv2.resize(framed.source.layout, size[::-1], interpolation=cv2.INTER_NEAREST)
                              .astype(np.int64))[None]
    return {"once_window_s": median_seconds(lambda: source_window(recapturer, framed, prepared.decoded.photo)),
            "once_encoder_s": median_seconds(lambda: network.encoder(inputs[0])),
            "per_frame_source_majority_s": median_seconds(
                lambda: majority_layout(labels, network.num_parts, network.config.internal_size))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=PHOTO)
    parser.add_argument("--model", default="default")
    parser.add_argument("--frames", type=int, default=31)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "video")
    args = parser.parse_args()
    if args.photo.parent.name == "photos" and args.photo.stem.isdigit() and 905 <= int(args.photo.stem) <= 1004:
        raise SystemExit(f"{args.photo} is a held-out photo (0905-1004): use a training photo")
    torch.set_num_threads(args.threads)
    library = preset_library()
    steps = max(1, (args.frames - 1) // 3)
    keyframes = [library[name].keypoints for name in ("front", "walking", "hand_up", "front")]
    moving = interpolate_poses(keyframes, steps)
    still = np.repeat(library["front"].keypoints[None], 10, axis=0)
    load_before = load1()
    with tempfile.TemporaryDirectory() as folder, PhotoModels(Recapturer.from_pretrained(args.model)) as models, \
            torch.inference_mode():
        clips = [run(models, args.photo, moving, Path(folder), "moving"),
                 run(models, args.photo, still, Path(folder), "still")]
        baseline = reuse_baseline(models, args.photo, moving, 6)
    report = {"model": args.model, "photo": args.photo.name, "threads": torch.get_num_threads(),
              "machine": platform.processor() or platform.machine(), "load1_before": load_before,
              "load1_after": load1(), "clips": clips, "source_reuse": baseline}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out.with_suffix(".json"), json.dumps(report, indent=1) + "\n")
    lines = [f"`recapture video` on CCP {args.photo.name} with the bundled `{args.model}` model, {report['threads']} "
             f"thread(s), load average {load_before:.2f} before / {report['load1_after']:.2f} after "
             f"({report['machine']}). Reference clips drawn from pose presets at {CLIP_FPS:g} FPS (poses replayed).",
             "",
             "| clip | frames | output (HxW) | frames/s (per-frame work) | frames/s (end to end) | CPU s/frame (end to "
             "end) | appearance s/frame | composite s/frame | encode s/frame | flicker background | flicker person |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in clips:
        spent = c["seconds_per_frame"]
        lines.append(f"| {c['clip']} | {c['frames']} | {c['size'][0]}x{c['size'][1]} | "
                     f"{c['frames_per_s_per_frame_work']} | {c['frames_per_s_end_to_end']} | "
                     f"{c['cpu_s_per_frame_end_to_end']} | {spent['appearance']} | "
                     f"{spent['composite']} | {spent['encode']} | {c['flicker_background']} | {c['flicker_person']} |")
    lines += ["", f"Source work once per video (same run, {baseline['frames']} frames, median of 3 alternated runs, "
              f"CPU seconds): {baseline['cpu_s_per_frame_without_reuse']} s/frame without, "
              f"{baseline['cpu_s_per_frame_with_reuse']} s/frame with; frames equal: {baseline['frames_equal']}. "
              f"The pieces done once (medians of 5): the photo-resolution window {baseline['once_window_s']} s, "
              f"the source encoder {baseline['once_encoder_s']} s; still per frame inside models/correspondence.py: "
              f"the source layout's majority one-hot {baseline['per_frame_source_majority_s']} s."]
    atomic_write_text(args.out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
