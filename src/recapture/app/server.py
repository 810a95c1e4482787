"""``recapture serve``: the Gradio page around :class:`recapture.app.state.Editor`.

The page: a demo sample or an uploaded photo and which person in it (keypoints, layout, and the photo
path's people and framing notes shown), a target pose (preset, annotation row of the server's
``--pose-file`` files, or a pose photo), figure sliders and clothing choices, Generate; then the photo with
the person re-posed (as ``recapture edit`` makes it), the target layout Ŝ_B, the SAT attention of a clicked
result pixel, and the full-size result to download. Every handler turns a refusal into a message in the page
(``gr.Error``) and anything unexpected into a short generic message (the traceback stays in the server log).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import stat
import tempfile
import threading
import time
from functools import wraps
from pathlib import Path
from typing import Any, Callable, Sequence

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr  # noqa: E402  (after the analytics switch above)

from recapture.app.inputs import AppError, PoseRows, UploadGuard, UploadLimits, demo_samples  # noqa: E402
from recapture.app.state import (  # noqa: E402
    KEEP, POSE_KINDS, SLIDER_RANGE, EditChoice, Editor, FramingChoice, PoseChoice,
)
from recapture.body.edits import CLOTHING_SLOTS, FIGURE_GROUPS  # noqa: E402
from recapture.devices import check_device  # noqa: E402
from recapture.pipelines.recapture import Recapturer  # noqa: E402
from recapture.pipelines.photo import LAYOUT_SOURCES  # noqa: E402
from recapture.hub import REGISTRY, bundled_models, describe  # noqa: E402

log = logging.getLogger("recapture.app")
#: What the file pickers accept (HEIC/HEIF named too: browsers do not count them as "image").
UPLOAD_TYPES = ["image", ".heic", ".heif"]
#: Requests waiting beyond this are refused (the page says the queue is full).
QUEUE_SIZE = 16
_LOCAL_FONTS = dict(font=["ui-sans-serif", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])


def user_errors(handler: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``handler``; AppError -> its message in the page, anything else -> a generic message."""

    @wraps(handler)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except gr.Error:
            raise
        except AppError as err:
            raise gr.Error(str(err), print_exception=False) from None
        except Exception:
            log.exception("request failed")
            raise gr.Error("Something went wrong on the server (details are in its log).",
                           print_exception=False) from None

    return run


def create_editor(model: str | Path, pose_files: Sequence[str | Path] = (), device: str = "cpu",
                  samples: int = 4, limits: UploadLimits = UploadLimits()) -> Editor:
    """Load the model, render the demo samples, read the pose files."""
    recapturer = Recapturer.from_pretrained(model, device)
    found = demo_samples(recapturer.image_size, recapturer.label_set, samples)
    guard = UploadGuard([gr.utils.get_upload_folder()])
    return Editor(recapturer, found, PoseRows(pose_files), guard, limits=limits)


def build_app(editor: Editor) -> gr.Blocks:
    """The Blocks page bound to ``editor`` (not launched)."""
    limits, rows = editor.limits, editor.rows
    kinds = [kind for kind in POSE_KINDS if kind != "annotation row" or rows]
    loaded = editor.recapturer.loaded
    about = describe(loaded) if loaded is not None else "in-memory model"
    height, width = editor.recapturer.image_size
    image = dict(interactive=False, format="png", buttons=["download", "fullscreen"])
    with gr.Blocks(title="Recapture", analytics_enabled=False, delete_cache=(3600, 3600)) as demo:
        source_state, result_state = gr.State(None), gr.State(None)
        gr.Markdown(f"## Recapture as you want\nRe-pose a person in a photo, reshape the figure, change the "
                    f"clothes; the result is the same photo at its own size. Model frame {height}x{width}; "
                    f"weights: `{about}`.")
        with gr.Row():
            with gr.Column():
                gr.Markdown("### 1. Source portrait")
                sample = gr.Dropdown(list(editor.samples), value=None, label="Demo sample", elem_id="sample")
                upload = gr.File(label=f"…or upload a photo (JPEG/PNG/WebP/HEIC, at most {limits.megabytes:.0f} MB "
                                 f"and {limits.max_side}x{limits.max_side} pixels)", file_types=UPLOAD_TYPES,
                                 type="filepath", elem_id="upload")
                person = gr.Number(0, minimum=0, precision=0, label="Person in the upload (0 = the largest, "
                                   "1 = the next, ...; as --person)", elem_id="person")
                source_image = gr.Image(label="Source and keypoints", elem_id="source-image", **image)
                source_layout = gr.Image(label="Source layout", elem_id="source-layout", **image)
                source_notes = gr.Markdown(elem_id="source-notes")
            with gr.Column():
                gr.Markdown("### 2. Target pose and edits")
                pose_kind = gr.Radio(kinds, value="preset", label="Target pose from", elem_id="pose-kind")
                preset = gr.Dropdown(list(editor.presets), value=next(iter(editor.presets)), label="Pose preset",
                                     elem_id="preset")
                row = gr.Textbox(rows.example(), label="Annotation row (FILE.csv:ROW or ROW)", info=rows.describe(),
                                 visible=False, elem_id="row")
                pose_photo = gr.File(label="Pose photo (its person's pose is used)", file_types=UPLOAD_TYPES,
                                     type="filepath", visible=False, elem_id="pose-photo")
                low, high = SLIDER_RANGE
                sliders = [gr.Slider(low, high, value=1.0, step=0.05, label=f"{group} width (1 = unchanged)",
                                     elem_id=f"figure-{group}") for group in FIGURE_GROUPS]
                clothing = [gr.Radio([KEEP, *categories], value=KEEP, label=f"{slot} clothing",
                                     elem_id=f"clothing-{slot}") for slot, categories in CLOTHING_SLOTS.items()]
                invent = gr.Checkbox(False, label="Let the model draw body parts the photo does not show "
                                     "(--allow-invent; off: the result keeps the photo's framing)",
                                     elem_id="allow-invent")
                retarget = gr.Checkbox(True, label="Keep the person's own bone lengths (off: --no-retarget)",
                                       elem_id="retarget")
                layout = gr.Radio(list(LAYOUT_SOURCES), value=editor.options.layout, elem_id="layout",
                                  label="Target layout Ŝ_B (--layout): prior = the keypoint warp of the parse; "
                                        "network = the geometric network (better for view changes; a side view "
                                        "may show the face twice); auto = network when the pose changes")
                generate = gr.Button("Generate", variant="primary", elem_id="generate")
                status = gr.Markdown(elem_id="status")
            with gr.Column():
                gr.Markdown("### 3. Result")
                result_image = gr.Image(label="Result: the photo with the person re-posed (click the person to see "
                                        "where a pixel looked in the source)", elem_id="result-image", **image)
                layout_image = gr.Image(label="Target layout Ŝ_B", elem_id="target-layout", **image)
                attention_image = gr.Image(label="SAT attention: clicked pixel | its attention over the source",
                                           elem_id="attention", **image)
                download = gr.File(label="Download the result (full size, with the photo's metadata)",
                                   interactive=False, elem_id="download")
        source_outputs = [source_state, source_image, source_layout, source_notes]

        @user_errors
        def on_sample(name: str | None) -> tuple[Any, ...]:
            if not name:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            view = editor.sample(name)
            return view.source, view.keypoints_image, view.layout_image, view.notes, None

        @user_errors
        def on_upload(path: str | None, number: float | None) -> tuple[Any, ...]:
            if not path:
                return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip()
            view = editor.upload(path, number)
            return view.source, view.keypoints_image, view.layout_image, view.notes, None

        def on_pose_kind(kind: str) -> tuple[Any, ...]:
            return tuple(gr.update(visible=kind == name) for name in ("preset", "annotation row", "pose photo"))

        @user_errors
        def on_generate(source: Any, kind: str, preset_name: str, row_text: str, photo: str | None,
                        allow_invent: bool, retargeting: bool, layout_source: str, *controls: Any) -> tuple[Any, ...]:
            figure = dict(zip(FIGURE_GROUPS, controls[: len(FIGURE_GROUPS)]))
            garments = dict(zip(CLOTHING_SLOTS, controls[len(FIGURE_GROUPS):]))
            view = editor.generate(source, PoseChoice(kind, preset_name, row_text, photo), EditChoice(figure, garments),
                                   FramingChoice(allow_invent, retargeting), layout_source)
            return view.photo, view.image, view.layout_image, None, str(view.download), view.status

        @user_errors
        def on_select(result: Any, event: gr.SelectData) -> Any:
            return editor.attention(result, (int(event.index[0]), int(event.index[1])))

        quick = dict(concurrency_limit=None, show_progress="hidden")
        sample.change(on_sample, sample, [*source_outputs, upload])
        upload.upload(on_upload, [upload, person], [*source_outputs, sample])
        person.input(on_upload, [upload, person], [*source_outputs, sample])
        pose_kind.change(on_pose_kind, pose_kind, [preset, row, pose_photo], **quick)
        generate.click(on_generate, [source_state, pose_kind, preset, row, pose_photo, invent, retarget, layout,
                                     *sliders, *clothing],
                       [result_state, result_image, layout_image, attention_image, download, status])
        result_image.select(on_select, result_state, attention_image)
    return demo


#: Prefix of the editor's own temporary folders (results to download, pose photos) in the system temp folder.
WORK_PREFIX = "recapture-app-"
#: Such folders older than this (seconds) are left-overs of a server that was killed: removed at start.
STALE_AFTER = 24 * 3600


def clean_stale_work_dirs(root: str | Path | None = None, max_age: float = STALE_AFTER) -> list[Path]:
    """Remove this user's ``recapture-app-*`` folders under ``root`` (the system temp folder) that were
    last modified more than ``max_age`` seconds ago; returns what was removed."""
    root = Path(root or tempfile.gettempdir())
    removed = []
    for folder in root.glob(f"{WORK_PREFIX}*"):
        try:
            info = folder.lstat()
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and time.time() - info.st_mtime > max_age:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def serve(model: str | Path = "default", host: str = "127.0.0.1", port: int = 7860,
          pose_files: Sequence[str | Path] = (), device: str = "cpu", limits: UploadLimits = UploadLimits()) -> None:
    """Start the editor and block until interrupted (Ctrl-C or SIGTERM); its temporary folder is removed
    on the way out, and stale ones of killed servers (older than a day) at start."""
    check_device(device)
    if not 1 <= int(port) <= 65535:
        raise AppError(f"port {port} is outside 1-65535")
    if str(model) in REGISTRY and str(model) not in bundled_models() and not Path(model).exists():
        raise AppError(f"the bundled {str(model)!r} weights are not installed in this copy; start with "
                       "--model FILE.safetensors (exported weights) or a training run directory")
    for folder in clean_stale_work_dirs():
        log.info("removed stale work folder %s", folder)
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _interrupt) if main else None
    editor = None
    try:
        editor = create_editor(model, pose_files, device, limits=limits)
        demo = build_app(editor)
        demo.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
        demo.launch(server_name=host, server_port=port, max_file_size=limits.max_bytes, show_error=False,
                    share=False, ssr_mode=False, inbrowser=False, theme=gr.themes.Default(**_LOCAL_FONTS),
                    footer_links=[])
    except KeyboardInterrupt:
        pass
    finally:
        if editor is not None:
            editor.close()
        if main:
            signal.signal(signal.SIGTERM, previous)
