import itertools

import numpy as np
import pandas as pd
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from sklearn.metrics import adjusted_rand_score, cohen_kappa_score

from simlabel.core.labels import MISSING, build_label_matrix, split_items
from simlabel.core.similarity import SIMILARITY_ESTIMATORS
from simlabel.demo.synthetic import (
    CLASS_NAMES,
    annotator_confusions,
    annotator_groups,
    annotator_ids,
    choose_test_panel,
    demo_truth,
    group_confusion,
    groups_from_sizes,
    item_ids,
    make_demo_clips,
    simulate_annotations,
    true_similarity,
)
from simlabel.errors import UserError
from simlabel.folder import read_crowd_folder
from simlabel.pipelines.demo_data.nodes import generate_demo_data
from tests.conftest import PROJECT_ROOT

GROUPS = ((0, 1, 2, 3), (4, 5, 6), (7, 8, 9))
MIN_SHARED = 3


@pytest.fixture(scope="module")
def default_data():
    ids, truth, clips = make_demo_clips()
    return ids, truth, clips, simulate_annotations(truth)


def _missing_rates(table, n_items, n_annotators=10):
    counts = table["annotator_id"].value_counts()
    return np.array([1 - counts.get(f"A{a + 1}", 0) / n_items for a in range(n_annotators)])


def _pair_kappas(table, n_annotators=10):
    """Cohen's kappa (sklearn) on each pair's co-labelled items; None when fewer than MIN_SHARED."""
    wide = table.pivot(index="item_id", columns="annotator_id", values="label")
    kappas = {}
    for a, b in itertools.combinations(range(n_annotators), 2):
        both = wide[[f"A{a + 1}", f"A{b + 1}"]].dropna()
        if len(both) < MIN_SHARED:
            kappas[a, b] = None
            continue
        x, y = both.iloc[:, 0].astype(int), both.iloc[:, 1].astype(int)
        if x.nunique() == 1 and y.nunique() == 1:  # kappa undefined (p_e = 1): SPEC section 1 rule
            kappas[a, b] = float((x == y).all())
        else:
            kappas[a, b] = cohen_kappa_score(x, y)
    return kappas


def _group_recovery(table):
    group_of = annotator_groups(10, GROUPS)
    g = np.array([group_of[f"A{a + 1}"] for a in range(10)])
    kappas = _pair_kappas(table)
    within = [k for (a, b), k in kappas.items() if k is not None and g[a] == g[b]]
    between = [k for (a, b), k in kappas.items() if k is not None and g[a] != g[b]]
    sim = np.zeros((10, 10))
    for (a, b), k in kappas.items():
        sim[a, b] = sim[b, a] = max(k or 0.0, 0.0)  # too little overlap -> 0; negative -> 0
    dist = 1 - sim
    np.fill_diagonal(dist, 0)
    clusters = fcluster(linkage(squareform(dist), method="average"), t=3, criterion="maxclust")
    return (
        np.mean(within),
        np.mean(between),
        adjusted_rand_score(g, clusters),
        len(within),
        len(between),
    )


# ----------------------------------------------------------------------------- clips
def test_clip_shapes_and_balance(default_data):
    ids, truth, clips, _ = default_data
    assert len(CLASS_NAMES) == 8
    assert ids[:2] == ["clip_0000", "clip_0001"] and len(ids) == 120 and len(set(ids)) == 120
    assert truth.shape == (120,) and truth.dtype == np.int64
    assert np.bincount(truth, minlength=8).tolist() == [15] * 8
    assert list(clips) == ids
    for clip in clips.values():
        assert clip.shape == (24, 120, 160, 3) and clip.dtype == np.uint8


def test_clips_deterministic():
    a = make_demo_clips(n_items=10, n_frames=4, height=40, width=48, seed=3)
    b = make_demo_clips(n_items=10, n_frames=4, height=40, width=48, seed=3)
    c = make_demo_clips(n_items=10, n_frames=4, height=40, width=48, seed=4)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    for key in a[0]:
        np.testing.assert_array_equal(a[2][key], b[2][key])
    assert not all(np.array_equal(a[2][key], c[2][key]) for key in a[0])


def test_clips_encode_class_in_hue_and_motion(default_data):
    _, truth, clips, _ = default_data
    # The object moves: frames differ beyond pixel noise.
    clip = clips["clip_0000"].astype(np.float32)
    assert np.abs(clip[0] - clip[len(clip) // 2]).mean() > 1.0
    # Mean colour of the most saturated pixels (the object) clusters by class hue.
    hues = []
    for key in sorted(clips):
        c = clips[key][0].reshape(-1, 3).astype(np.float32)
        sat = c.max(1) - c.min(1)
        obj = c[sat >= np.quantile(sat, 0.97)].mean(0)
        hues.append(np.arctan2(np.sqrt(3) * (obj[1] - obj[2]), 2 * obj[0] - obj[1] - obj[2]))
    hues = np.array(hues)
    centre = {c: np.angle(np.exp(1j * hues[truth == c]).mean()) for c in range(8)}
    nearest = np.array(
        [min(range(8), key=lambda c: abs(np.angle(np.exp(1j * (h - centre[c]))))) for h in hues]
    )
    assert (nearest == truth).mean() > 0.9


def test_clips_reject_bad_arguments():
    with pytest.raises(ValueError):
        make_demo_clips(n_items=0)
    with pytest.raises(ValueError):
        make_demo_clips(height=8)


# ----------------------------------------------------------------------- annotations
def test_annotation_table_format(default_data):
    ids, truth, _, table = default_data
    assert list(table.columns) == ["item_id", "annotator_id", "label"]
    assert pd.api.types.is_integer_dtype(table["label"])
    assert table["label"].between(0, 7).all()
    assert set(table["item_id"]) == set(ids)  # every item has at least one label
    assert not table.duplicated(["item_id", "annotator_id"]).any()
    assert set(table["annotator_id"]) <= {f"A{a}" for a in range(1, 11)}
    per_item = table.groupby("item_id").size()
    assert per_item.between(1, 3).all()
    assert abs(per_item.mean() - 2.0) < 0.05


def test_annotations_deterministic(default_data):
    _, truth, _, table = default_data
    pd.testing.assert_frame_equal(table, simulate_annotations(truth, seed=0))
    assert not table.equals(simulate_annotations(truth, seed=1))


def test_missing_rates(default_data):
    _, truth, _, table = default_data
    miss = _missing_rates(table, len(truth))
    assert 0.75 <= miss.mean() <= 0.85
    assert 0.88 <= miss[9] <= 0.94
    assert np.all(np.delete(miss, 9) < 0.88)  # only the sparse annotator is that sparse


def test_group_zero_is_accurate_and_others_are_not(default_data):
    _, truth, _, table = default_data
    truth_of = pd.Series(truth, index=[f"clip_{i:04d}" for i in range(len(truth))])
    correct = table["label"].to_numpy() == truth_of[table["item_id"]].to_numpy()
    acc = pd.Series(correct).groupby(table["annotator_id"].to_numpy()).mean()
    assert all(acc[f"A{a + 1}"] > 0.7 for a in GROUPS[0])
    assert all(acc[f"A{a + 1}"] < 0.4 for a in GROUPS[1] + GROUPS[2])


def test_kappa_recovers_groups(default_data):
    _, _, _, table = default_data
    within, between, ari, n_within, n_between = _group_recovery(table)
    assert n_within >= 8 and n_between >= 20  # enough estimable pairs of both kinds
    assert within - between >= 0.3, (within, between)
    assert ari >= 0.6, ari


def test_kappa_recovery_fails_without_groups(default_data, monkeypatch):
    """Control: if every group had the same confusion, kappa would not recover the 'groups'."""
    import simlabel.demo.synthetic as synthetic

    _, truth, _, _ = default_data
    monkeypatch.setattr(synthetic, "group_confusion", lambda g, n: group_confusion(0, n))
    within, between, ari, _, _ = _group_recovery(synthetic.simulate_annotations(truth))
    assert within - between < 0.3 and ari < 0.6


def test_group_confusions_are_distinct_and_stochastic():
    mats = [group_confusion(g, 8) for g in range(3)]
    for m in mats:
        np.testing.assert_allclose(m.sum(1), 1)
        assert (m >= 0).all()
    assert np.diag(mats[0]).min() > 0.8
    # Groups 1 and 2 each confuse 3 class pairs (6 of 8 classes), never the same pair, and
    # label the other classes like group 0: distinct tendencies that still agree in part.
    top = [m.argmax(1) for m in mats]
    assert (top[0] == np.arange(8)).all()
    swapped = [top[g] != np.arange(8) for g in (1, 2)]
    assert swapped[0].sum() == swapped[1].sum() == 6
    both = swapped[0] & swapped[1]
    assert both.any() and (top[1][both] != top[2][both]).all()
    for odd in (3, 5):  # odd class counts: one class has no swap partner
        for g in range(4):
            np.testing.assert_allclose(group_confusion(g, odd).sum(1), 1)


def test_annotator_groups():
    assert annotator_groups(10, GROUPS) == {
        "A1": 0,
        "A2": 0,
        "A3": 0,
        "A4": 0,
        "A5": 1,
        "A6": 1,
        "A7": 1,
        "A8": 2,
        "A9": 2,
        "A10": 2,
    }
    with pytest.raises(ValueError):
        annotator_groups(10, ((0, 1), (2, 3)))  # not a partition
    with pytest.raises(ValueError):
        annotator_groups(3, ((0, 1), (1, 2)))  # overlapping


@pytest.mark.parametrize("n_items", [9, 40, 1000])
def test_annotations_other_sizes(n_items):
    truth = np.arange(n_items) % 8
    table = simulate_annotations(truth, seed=5)
    assert table["item_id"].nunique() == n_items
    assert not table.duplicated(["item_id", "annotator_id"]).any()
    assert 0.75 <= _missing_rates(table, n_items).mean() <= 0.85


def test_annotations_reject_bad_arguments():
    truth = np.arange(20) % 8
    for kwargs in (
        {"labels_per_item_mean": 0.5},
        {"labels_per_item_mean": 3.5},
        {"sparse_annotator": 10},
        {"sparse_missing": 1.0},
        {"n_classes": 5},  # truth has class 7
    ):
        with pytest.raises(ValueError):
            simulate_annotations(truth, **kwargs)
    with pytest.raises(ValueError):
        simulate_annotations(np.array([0.5, 1.0]))


# ------------------------------------------------------- known confusions and similarity
def _label_matrix(table, n_items, n_annotators=10):
    y = np.full((n_items, n_annotators), MISSING, np.int64)
    rows = table["item_id"].map({k: i for i, k in enumerate(item_ids(n_items))}).to_numpy()
    cols = (
        table["annotator_id"]
        .map({k: a for a, k in enumerate(annotator_ids(n_annotators))})
        .to_numpy()
    )
    y[rows, cols] = table["label"].to_numpy()
    return y


def test_demo_truth_is_the_clips_truth_without_rendering():
    _, truth, _ = make_demo_clips(n_items=30, n_frames=1, height=32, width=32, seed=4)
    np.testing.assert_array_equal(demo_truth(30, seed=4), truth)
    assert (
        demo_truth().dtype == np.int64
        and np.bincount(demo_truth(), minlength=8).tolist() == [15] * 8
    )
    with pytest.raises(ValueError):
        demo_truth(0)


def test_annotator_confusions_shape_and_group_structure():
    conf = annotator_confusions(seed=3)
    assert conf.shape == (10, 8, 8)
    np.testing.assert_allclose(conf.sum(-1), 1)
    np.testing.assert_array_equal(conf, annotator_confusions(seed=3))
    assert not np.allclose(conf, annotator_confusions(seed=4))  # personal noise follows the seed
    group_of = annotator_groups(10, GROUPS)
    for a, annotator in enumerate(annotator_ids(10)):
        base = group_confusion(group_of[annotator], 8)
        assert np.abs(conf[a] - base).max() <= 0.05 + 1e-12  # 5 % personal noise at most
        assert np.abs(conf[a] - base).max() > 0  # ... and some


def test_labels_are_drawn_from_annotator_confusions():
    """Empirical p(label | true class) of each annotator on a large simulated set matches the exact matrices."""
    truth = np.arange(24_000) % 8
    table = simulate_annotations(truth, seed=6)
    conf = annotator_confusions(seed=6)
    true_of = truth[table["item_id"].str.slice(5).astype(int).to_numpy()]
    annot = table["annotator_id"].str.slice(1).astype(int).to_numpy() - 1
    counts = np.zeros((10, 8, 8))
    np.add.at(counts, (annot, true_of, table["label"].to_numpy()), 1)
    empirical = counts / counts.sum(-1, keepdims=True)
    assert counts.sum(-1).min() > 150
    assert np.abs(empirical - conf).max() < 0.08
    assert np.abs(empirical - conf).mean() < 0.01
    # The personal noise itself is reproduced: deviations from the expected group matrix
    # correlate with this seed's draw, not with another seed's.
    group_of = annotator_groups(10, GROUPS)
    mean = np.stack([0.95 * group_confusion(group_of[a], 8) + 0.05 / 8 for a in annotator_ids(10)])
    fit, other = (
        np.corrcoef((empirical - mean).ravel(), (matrices - mean).ravel())[0, 1]
        for matrices in (conf, annotator_confusions(seed=7))
    )
    assert fit > 0.35 > 0.2 > other, (fit, other)


def test_true_similarity_format_and_groups():
    sim = true_similarity(seed=0)
    ids = [f"A{a}" for a in range(1, 11)]
    assert list(sim.index) == ids and list(sim.columns) == ids
    values = sim.to_numpy()
    np.testing.assert_allclose(values, values.T)
    assert (np.diag(values) == 1).all() and (values >= 0).all() and (values <= 1).all()
    g = np.array([annotator_groups(10, GROUPS)[a] for a in ids])
    same = (g[:, None] == g[None, :]) & ~np.eye(10, dtype=bool)
    between = g[:, None] != g[None, :]
    assert values[same].min() > 0.5 > 0.2 > values[between].max()
    np.testing.assert_allclose(true_similarity(seed=0, class_prior=np.full(8, 1 / 8)), sim)
    with pytest.raises(ValueError):
        true_similarity(class_prior=np.full(8, 0.2))


def test_true_similarity_is_the_kappa_of_a_large_simulated_crowd():
    """The demo's own sampler, many items: every pair's sample kappa is close to its expected kappa."""
    truth = np.arange(40_000) % 8
    y = _label_matrix(simulate_annotations(truth, seed=2), truth.size)
    observed = SIMILARITY_ESTIMATORS["kappa"](y, 8, min_overlap=300)
    off = ~np.eye(10, dtype=bool)
    overlap = (y != MISSING).astype(int).T @ (y != MISSING).astype(int)
    assert overlap[off].min() >= 300
    err = np.abs(observed - true_similarity(seed=2).to_numpy())[off]
    assert err.mean() < 0.02 and err.max() < 0.08, (err.mean(), err.max())


# ----------------------------------------------------------------------- test panel
def test_test_panel_is_class_balanced_seeded_and_sorted():
    truth = demo_truth(160, seed=0)
    panel = choose_test_panel(truth, 40, seed=0)
    assert panel.dtype == np.int64 and panel.shape == (40,) and (np.diff(panel) > 0).all()
    assert np.bincount(truth[panel], minlength=8).tolist() == [5] * 8
    np.testing.assert_array_equal(panel, choose_test_panel(truth, 40, seed=0))
    assert not np.array_equal(panel, choose_test_panel(truth, 40, seed=1))
    assert np.ptp(np.bincount(truth[choose_test_panel(truth, 13, seed=2)], minlength=8)) <= 1
    for bad in (0, 160, 2.5):
        with pytest.raises(ValueError, match="n_panel"):
            choose_test_panel(truth, bad)


def test_every_annotator_labels_every_panel_item():
    truth = demo_truth(100, seed=3)
    panel = choose_test_panel(truth, 30, seed=3)
    table = simulate_annotations(truth, n_annotators=12, groups=groups_from_sizes([8, 4]), labels_per_item_mean=2.5,
                                 sparse_annotator=None, seed=3, panel=panel)
    assert not table.duplicated(["item_id", "annotator_id"]).any()
    per_item = table.groupby("item_id").size()
    in_panel = per_item.index.isin(item_ids(100)[i] for i in panel)
    assert (per_item[in_panel] == 12).all() and in_panel.sum() == 30
    assert per_item[~in_panel].between(1, 3).all() and len(per_item) == 100  # every item is labelled
    assert abs(per_item[~in_panel].mean() - 2.5) < 0.02
    pd.testing.assert_frame_equal(table, simulate_annotations(
        truth, n_annotators=12, groups=groups_from_sizes([8, 4]), labels_per_item_mean=2.5, sparse_annotator=None,
        seed=3, panel=panel))
    with pytest.raises(ValueError, match="panel"):
        simulate_annotations(truth, panel=np.array([1, 1]))
    with pytest.raises(ValueError, match="panel"):
        simulate_annotations(truth, panel=np.arange(100))


def test_panel_labels_follow_the_confusions():
    """Panel labels are drawn from the same confusions as the others (many panel items, one annotator's row)."""
    truth = np.arange(4000) % 8
    panel = np.arange(0, 4000, 3)
    table = simulate_annotations(truth, seed=1, panel=panel)
    rows = table["item_id"].str.slice(5).astype(int).to_numpy()
    on_panel = np.isin(rows, panel)
    conf = annotator_confusions(seed=1)
    annot = table["annotator_id"].str.slice(1).astype(int).to_numpy() - 1
    counts = np.zeros((10, 8, 8))
    np.add.at(counts, (annot[on_panel], truth[rows[on_panel]], table["label"].to_numpy()[on_panel]), 1)
    assert np.abs(counts / counts.sum(-1, keepdims=True) - conf).max() < 0.1


def test_groups_from_sizes():
    assert groups_from_sizes([2, 3]) == [[0, 1], [2, 3, 4]]
    with pytest.raises(ValueError):
        groups_from_sizes([2, 0])


# ------------------------------------------------------------------- the shipped demo
def _shipped_parameters() -> dict:
    import yaml

    return yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_demo_data.yml").read_text())["demo_data"]


@pytest.fixture(scope="module")
def shipped_demo():
    return _shipped_parameters(), generate_demo_data(_shipped_parameters())


def test_shipped_demo_writes_a_dense_test_panel(shipped_demo, tmp_path):
    params, (clips, labels, classes, truth, test_items, similarity) = shipped_demo
    panel = test_items.splitlines()
    assert test_items.endswith("\n") and len(panel) == len(set(panel)) == params["test_panel"] >= 30
    n_annotators = sum(params["group_sizes"])
    on_panel = labels[labels["item_id"].isin(panel)]
    assert len(on_panel) == len(panel) * n_annotators  # every annotator labels every panel clip
    # So with the panel as the test split, every annotator has >= 30 test labels on every seed.
    matrix, _ = build_label_matrix(labels, list(clips), classes=classes.splitlines())
    split = split_items(matrix.index, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=0, test_items=panel)
    test = split["split"].eq("test").to_numpy()
    assert ((matrix.to_numpy()[test] != MISSING).sum(0) >= 30).all()
    # Outside the panel labels are sparse: a few dozen per annotator.
    outside = labels[~labels["item_id"].isin(panel)].groupby("annotator_id").size()
    assert len(outside) == n_annotators and outside.between(15, 40).all()
    # Written as the folder format, it reads back with the panel.
    labels.to_csv(tmp_path / "labels.csv", index=False)
    (tmp_path / "classes.txt").write_text(classes)
    (tmp_path / "test_items.txt").write_text(test_items)
    assert read_crowd_folder(tmp_path).test_items == panel
    assert list(clips) == truth["item_id"].tolist() and len(clips) == params["n_items"]


def test_shipped_demo_true_similarity_shows_the_groups(shipped_demo):
    params, (_, labels, _, _, test_items, similarity) = shipped_demo
    groups = groups_from_sizes(params["group_sizes"])
    ids = annotator_ids(sum(params["group_sizes"]))
    assert list(similarity.index) == ids and list(similarity.columns) == ids
    g = np.array([k for k, members in enumerate(groups) for _ in members])
    same = (g[:, None] == g[None, :]) & ~np.eye(len(g), dtype=bool)
    values = similarity.to_numpy()
    assert values[same].min() > 0.5 > 0.2 > values[g[:, None] != g[None, :]].max()
    # The labels carry that structure: kappa on the (dense) panel recovers the groups exactly.
    panel = test_items.splitlines()
    wide = labels[labels["item_id"].isin(panel)].pivot(index="item_id", columns="annotator_id", values="label")
    y = wide[ids].to_numpy()
    kappa = SIMILARITY_ESTIMATORS["kappa"](y, 8, min_overlap=2).to_dense()
    np.fill_diagonal(kappa, 1.0)
    clusters = fcluster(linkage(squareform(1 - kappa, checks=False), method="average"), t=len(groups), criterion="maxclust")
    assert adjusted_rand_score(g, clusters) == 1.0


@pytest.mark.parametrize(
    "override, message",
    [({"test_panel": 0}, "demo_data.test_panel"), ({"group_sizes": [6, 0]}, "demo_data.group_sizes")],
)
def test_shipped_demo_rejects_bad_design(override, message):
    params = _shipped_parameters() | {"n_items": 20, "n_frames": 1, "height": 32, "width": 32} | override
    with pytest.raises(UserError, match=message):
        generate_demo_data(params)
    with pytest.raises(UserError, match=r"\[1, 20\)"):
        generate_demo_data(params | {"group_sizes": [2, 2], "test_panel": 20})


def test_shipped_demo_design_keys_have_defaults():
    params = {k: v for k, v in _shipped_parameters().items() if k not in ("test_panel", "group_sizes")}
    _, labels, _, _, test_items, similarity = generate_demo_data(params | {"n_frames": 1, "height": 32, "width": 32})
    assert len(test_items.splitlines()) == 40 and similarity.shape == (12, 12)
