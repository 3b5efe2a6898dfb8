"""The clip explorer (mexpr.explorer): it builds and updates without a display, and draws its static strip."""

from __future__ import annotations

import numpy as np
import pytest

from mexpr import explorer


def fake_view(key: str, label: str, probs64, probs128, seed: int = 0) -> explorer.ClipView:
    rng = np.random.default_rng(seed)
    streams = {}
    for f in (64, 128):
        rel = np.zeros((f, 112, 96), np.float32)
        rel[f // 2, 40:60, 30:50] = 1  # relevant in the middle of the clip only
        streams[f] = {
            "frames": rng.integers(0, 256, (f + 1, 112, 96, 3)).astype(np.uint8),
            "magnified": rng.integers(0, 256, (f + 1, 112, 96, 3)).astype(np.uint8),
            "munsell": rng.integers(0, 256, (f, 112, 96, 3)).astype(np.uint8),
            "relevance": rel,
        }
    return explorer.ClipView(
        key, label, streams, {64: np.array(probs64), 128: np.array(probs128)}, apex=0.4, aus="12", alpha=10, explained={64: label, 128: label}
    )


@pytest.fixture
def views():
    made = []

    def later():
        made.append(1)
        return fake_view("casme2/sub02/EP01", "Surprise", [0.1, 0.2, 0.3, 0.4], [0.05, 0.05, 0.1, 0.8], seed=1)

    return {
        "casme2/sub01/EP01": fake_view("casme2/sub01/EP01", "Positive", [0.1, 0.1, 0.7, 0.1], [0.3, 0.4, 0.2, 0.1]),
        "casme2/sub02/EP01": later,
    }, made


def test_explorer_builds_and_updates_on_a_slider_change_without_a_display(views):
    views, made = views
    ex = explorer.Explorer(views)
    assert made == []  # the second clip is made only when chosen
    first = bytes(ex.image.value)
    assert first.startswith(b"\x89PNG") and ex.t == 0 and ex.slider.max == 63
    assert "Positive" in ex.info.value and "C = Positive" in ex.info.value  # P1 = 0.7 >= P2 = 0.4: DTSCNN64 decides
    ex.slider.value = 32  # the field where the relevance lies
    assert ex.t == 32 and bytes(ex.image.value) != first
    panels = ex.panels()
    assert list(panels) == list(explorer.PANELS) and all(p.shape == (112, 96, 3) for p in panels.values())
    assert np.array_equal(panels["frame"], ex.view.streams[64]["frames"][33]) and np.array_equal(
        panels["Munsell flow"], ex.view.streams[64]["munsell"][32]
    )
    # Grad-CAM tints the relevant square at field 32 and nothing at field 0
    assert np.abs(panels["Grad-CAM"].astype(int) - ex.panels(0)["Grad-CAM"].astype(int))[40:60, 30:50].mean() > 20
    picture = ex.picture()
    assert picture.ndim == 3 and picture.shape[1] > 4 * 96 * ex.scale
    # the other stream: the field ending at the same moment (frame 33 of 65, frame 66 of 129)
    ex.stream.value = 128
    assert ex.slider.max == 127 and ex.t == 65
    # another clip: made now, its label, and Eq. 11 taking DTSCNN128's surer answer
    ex.clip.value = "casme2/sub02/EP01"
    assert made == [1] and "Surprise" in ex.info.value and "P1 &lt; P2" in ex.info.value
    assert ex.decision() == {"C1": "Surprise", "P1": 0.4, "C2": "Surprise", "P2": 0.8, "first_decides": False, "C": "Surprise"}
    assert "application/vnd.jupyter.widget-view+json" in ex._repr_mimebundle_()


def test_the_static_strip_shows_every_panel(views, tmp_path):
    ex = explorer.Explorer(views[0])
    fig = ex.strip(n=6, run_dir=tmp_path, name="strip")
    assert len(fig.axes) == 4 * 6
    assert (tmp_path / "figures" / "strip.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match="at least one clip"):
        explorer.Explorer({})
