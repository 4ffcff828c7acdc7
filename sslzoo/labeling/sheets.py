"""What a person reads from a round: the queries as a CSV to fill in, a contact sheet of the queried
images with the model's guesses, and the auto-labels of the rest of the pool, hard ones first.

Every item is a dict ``{"id", "item", "guess", "confidence", "difficulty"}`` (the file it came from
when the dataset names one; class name, max probability, ``easy``/``medium``/``hard``, all None
before the session has a model).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from typing import Any

import torch

QUERY_COLUMNS = ("rank", "id", "item", "guess", "confidence", "difficulty", "label")
"""``queries.csv``: the strategy's order (``rank`` 1 is its first choice; a session with a control group
puts its control items in at random places, so ``rank`` is the sheet's order), each ``item``'s file
when the dataset names one; ``label`` is left empty for the labeler to fill in."""
AUTOLABEL_COLUMNS = ("id", "item", "guess", "confidence", "difficulty", "label")
"""``autolabels.csv``: the model's guess for every other pool item, least confident first; a reviewer
writes a label where one is due, and the filled rows import like answers to queries."""
DIFFICULTY_COLORS = {"easy": "#2a9d4b", "medium": "#e9a23b", "hard": "#d1495b", None: "#777777"}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def csv_bytes(columns: Sequence[str], rows: Sequence[dict[str, Any]]) -> bytes:
    """``rows`` as CSV with a header (missing keys are empty cells)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    return out.getvalue().encode("utf-8")


def queries_csv(items: Sequence[dict[str, Any]]) -> bytes:
    return csv_bytes(QUERY_COLUMNS, [{**item, "rank": rank} for rank, item in enumerate(items, start=1)])


def autolabels_csv(items: Sequence[dict[str, Any]]) -> bytes:
    """The auto-labels, hard ones first: ascending confidence, ties by id."""
    ordered = sorted(items, key=lambda item: (item["confidence"], item["id"]))
    return csv_bytes(AUTOLABEL_COLUMNS, ordered)


def is_image(x: torch.Tensor) -> bool:
    """Raw inputs that are images: uint8 (N, H, W) or (N, C, H, W) with 1 or 3 channels."""
    return x.dtype == torch.uint8 and (x.dim() == 3 or (x.dim() == 4 and x.shape[1] in (1, 3)))


def png(image: torch.Tensor) -> bytes:
    """One raw uint8 image, (H, W) or (C, H, W), as PNG bytes."""
    from PIL import Image

    pixels = image.reshape(-1, *image.shape[-2:]).permute(1, 2, 0).cpu()
    out = io.BytesIO()
    Image.fromarray(pixels.squeeze(2).numpy() if pixels.shape[2] == 1 else pixels.numpy()).save(out, format="png")
    return out.getvalue()


def features_text(x: torch.Tensor) -> str:
    """One item's raw feature values as a line of text (for items that are not images)."""
    return ", ".join(f"x{i}={float(v):.4g}" for i, v in enumerate(x.flatten().tolist()))


def _rgb(colour: str) -> torch.Tensor:
    return torch.tensor([int(colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=torch.uint8)


def contact_sheet(images: torch.Tensor, items: Sequence[dict[str, Any]], title: str) -> bytes:
    """A grid of the queried ``images`` (raw uint8, in the order of ``items``) captioned with each id and
    the model's guess and confidence, framed in the colour of its difficulty; PNG bytes. The grid is
    one picture (one ``imshow``), so a sheet costs little however many items it shows."""
    from matplotlib.figure import Figure

    pictures = images.cpu()
    pictures = pictures.unsqueeze(1) if pictures.dim() == 3 else pictures
    pictures = pictures.expand(-1, 3, -1, -1) if pictures.shape[1] == 1 else pictures
    n, (_, height, width) = len(items), pictures.shape[1:]
    cols, frame = min(8, max(1, n)), max(2, min(height, width) // 12)
    rows = max(1, math.ceil(n / cols))
    cell_w, caption = width + 2 * frame, (width + 2 * frame) * 2 // 5
    cell_h = caption + height + 2 * frame
    canvas = torch.full((rows * cell_h, cols * cell_w, 3), 255, dtype=torch.uint8)
    for index, item in enumerate(items):
        top, left = divmod(index, cols)
        top, left = top * cell_h + caption, left * cell_w
        canvas[top:top + height + 2 * frame, left:left + cell_w] = _rgb(DIFFICULTY_COLORS[item["difficulty"]])
        canvas[top + frame:top + frame + height, left + frame:left + frame + width] = pictures[index].permute(1, 2, 0)
    inches = 1.6 * cols
    grid_height = inches * canvas.shape[0] / canvas.shape[1]
    fig = Figure(figsize=(inches, grid_height + 0.4), dpi=100)
    fig.suptitle(title, fontsize=10, y=1 - 0.1 / (grid_height + 0.4))
    ax = fig.add_axes((0.0, 0.0, 1.0, grid_height / (grid_height + 0.4)))
    ax.imshow(canvas.numpy(), interpolation="nearest")
    ax.set_axis_off()
    for index, item in enumerate(items):
        top, left = divmod(index, cols)
        text = f"#{item['id']}"
        if item["guess"] is not None:
            text += f"\n{item['guess']} {100 * item['confidence']:.0f}% {item['difficulty']}"
        ax.text(left * cell_w + cell_w / 2, top * cell_h + caption * 0.55, text, ha="center", va="center", fontsize=8)
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
