"""The Gradio page: upload an image, type a query, see the overlays, the model's answer and timings."""

from __future__ import annotations

import html
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from text4seg.app.web.config import ServeConfig
from text4seg.app.web.examples import builtin_examples
from text4seg.app.web.service import RequestError, RowsSoFar, SegmentService

# Gradio phones home (analytics, version check) unless told not to; this demo runs offline.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

log = logging.getLogger(__name__)

TITLE = "Text4Seg + ST-SAM: segment text by asking"
INTRO = (
    "Upload an image and ask, e.g. *segment the text in this image*, *the red word*, or a "
    "multi-class query such as `text|others`. The multimodal model answers with row-wise run-length "
    "semantic descriptors (one label per image patch); the refiner turns that coarse grid into a "
    "pixel mask."
)
# System fonts only: the default theme would fetch Google Fonts, which an offline machine cannot reach.
FONTS = ("ui-sans-serif", "system-ui", "sans-serif")
MONO_FONTS = ("ui-monospace", "monospace")


def _handler(service: SegmentService) -> Callable:
    """The event function: streams the answer's rows into the answer box as they are generated,
    then fills every output; a refusal becomes an error modal (never a traceback)."""
    import gradio as gr

    def segment(upload, query, refine):
        try:
            for item in service.stream(upload, query, refine):
                if isinstance(item, RowsSoFar):
                    status = f"Generating the descriptor: row {len(item.rows)} of {item.total}…"
                    yield gr.skip(), gr.skip(), item.text, status, gr.skip()
                else:
                    yield item.refined_overlay, item.coarse_overlay, item.answer, item.summary, item.details
        except RequestError as err:
            # The modal renders HTML and the message contains the user's file name.
            raise gr.Error(html.escape(str(err), quote=False), duration=None, print_exception=False) from None
        except Exception as err:  # noqa: BLE001 - the page must never show a traceback
            log.exception("segmentation failed")
            message = f"Segmentation failed ({type(err).__name__}); the server log has the details."
            raise gr.Error(message, duration=None, print_exception=False) from None

    return segment


def _examples(config: ServeConfig) -> dict[str, str]:
    """{caption: image path} of the example uploads."""
    examples = {Path(path).name: str(path) for path in config.examples}
    if config.builtin_examples:
        examples.update(builtin_examples(tempfile.mkdtemp(prefix="text4seg-serve-examples-")))
    return examples


def _input_column(*, has_refiner: bool, config: ServeConfig):
    """Upload box, query, refine switch, button and examples; returns (image, query, refine, button)."""
    import gradio as gr

    image = gr.Image(
        label="Image",
        type="filepath",
        image_mode=None,
        sources=["upload", "clipboard"],
        elem_id="input-image",
    )
    query = gr.Textbox(
        label="Query", value=config.default_query, max_length=config.max_query_chars, elem_id="query"
    )
    # A pipeline loaded with --refiner none has nothing to switch on.
    refine = gr.Checkbox(label="Refine with ST-SAM", value=has_refiner, visible=has_refiner, elem_id="refine")
    button = gr.Button("Segment", variant="primary", elem_id="segment")
    limits = f"Uploads up to {config.max_upload_mb:g} MB and {config.max_pixels / 1e6:g} megapixels."
    gr.Markdown(limits, elem_id="limits")
    examples = _examples(config)
    if examples:
        gr.Examples(
            examples=[[path] for path in examples.values()],
            example_labels=list(examples),
            inputs=[image],
            label="Examples",
        )
    return image, query, refine, button


def build_app(*, pipeline: Callable, config: ServeConfig):
    """A ``gradio.Blocks`` page around ``pipeline`` (see ``SegmentService`` for what it must accept).

    The event runs with ``preprocess=False`` so Gradio hands over the stored upload unopened:
    decoding goes through ``text4seg.core.io.load_image``, which refuses decompression bombs by their
    header before any pixels are decoded, instead of through PIL's own looser limit.
    """
    import gradio as gr

    service = SegmentService(pipeline=pipeline, config=config)
    # A stand-in pipeline without a refiner attribute (tests, wrappers) is taken to have one.
    has_refiner = getattr(getattr(pipeline, "refiner", None), "mode", "stsam") != "none"
    keep = 60 * config.keep_files_minutes
    with gr.Blocks(title=TITLE, analytics_enabled=False, delete_cache=(keep, keep)) as app:
        gr.Markdown(f"# {TITLE}\n{INTRO}")
        with gr.Row():
            with gr.Column():
                image, query, refine, button = _input_column(has_refiner=has_refiner, config=config)
            with gr.Column():
                refined = gr.Image(label="Refined mask", format="png", interactive=False, elem_id="refined")
                coarse = gr.Image(
                    label="Coarse mask (MLLM grid)", format="png", interactive=False, elem_id="coarse"
                )
        answer = gr.Textbox(label="Model answer", lines=8, max_lines=24, interactive=False, elem_id="answer")
        summary = gr.Markdown(elem_id="summary")
        with gr.Accordion("Result as JSON", open=False):
            details = gr.JSON(label="Result (JSON)", elem_id="details")
        gr.on(
            triggers=[button.click, query.submit],
            fn=_handler(service),
            inputs=[image, query, refine],
            outputs=[refined, coarse, answer, summary, details],
            preprocess=False,
            api_name="segment",
            concurrency_limit=config.concurrency,
        )
    return app


def launch(app, config: ServeConfig, *, block: bool = True, quiet: bool = False) -> str:
    """Start serving ``app``; returns the local URL (when ``block`` is False, right after start-up)."""
    import gradio as gr

    if not config.is_loopback:
        log.warning("serving on %s: anyone who can reach this address can use the demo", config.host)
    app.queue(default_concurrency_limit=config.concurrency, max_size=config.max_queue)
    _, url, _ = app.launch(
        server_name=config.host,
        server_port=config.port,
        max_file_size=config.max_upload_bytes,
        prevent_thread_lock=not block,
        show_error=False,
        quiet=quiet,
        ssr_mode=False,
        share=False,
        footer_links=["api"],
        theme=gr.themes.Default(font=FONTS, font_mono=MONO_FONTS),
    )
    return url
