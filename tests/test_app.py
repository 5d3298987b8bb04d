"""The app's model side (one upload in, what the page shows out) and its HTTP API, served
in-process; the page itself is driven in a real browser in test_app_browser.py."""

from __future__ import annotations

import time

import numpy as np
import pydicom
import pytest
from PIL import Image

from cxr_keras.artifact.predictor import Predictor
from cxr_keras.sample_data import sample_files
from cxr_keras.serving.app import DISCLAIMER, model_card_markdown, render_case
from cxr_keras.serving.case_analysis import (
    MB,
    CaseAnalyzer,
    UploadError,
    bundled_candidates,
    choose_examples,
)
from tests.conftest import free_port


@pytest.fixture(scope="module")
def analyzer(trained_artifact):
    return CaseAnalyzer(trained_artifact, mc_passes=4)


@pytest.fixture()
def bad_files(tmp_path):
    """A truncated JPEG, a text file named .png, an empty file and a knee DICOM."""
    film = sample_files("kermany")[0]
    truncated = tmp_path / "truncated.jpeg"
    truncated.write_bytes(film.read_bytes()[:2000])
    text = tmp_path / "notes.png"
    text.write_text("not an image at all")
    empty = tmp_path / "empty.jpeg"
    empty.write_bytes(b"")
    knee = pydicom.dcmread(sample_files("dicom")[0])
    knee.BodyPartExamined = "KNEE"
    knee.PatientName = "Doe^Jane"
    knee.save_as(tmp_path / "knee.dcm")
    return {
        "truncated.jpeg": (truncated, "truncated"),
        "notes.png": (text, "not an image"),
        "empty.jpeg": (empty, "empty"),
        "knee.dcm": (tmp_path / "knee.dcm", "not a chest image"),
    }


def test_analysis_matches_the_predictor(trained_artifact, analyzer):
    films = [sample_files("kermany")[0], sample_files("kermany")[-1], *sample_files("dicom")]
    expected = Predictor(trained_artifact).predict_files(films)
    for i, film in enumerate(films):
        result = analyzer.analyze(film)
        probability = result.findings[0].probability
        assert probability == pytest.approx(expected.probabilities[i, 0], abs=1e-5)
        assert result.findings[0].positive == bool(expected.decisions[i, 0])
        assert result.findings[0].threshold == pytest.approx(expected.thresholds[0])
        assert result.decision == ("PNEUMONIA" if expected.decisions[i, 0] else "negative")
        assert result.refer == bool(result.referral_reasons)
        assert result.findings[0].mc_dropout_std is not None
        # one overlay, RGB at the film's own aspect ratio, and a greyscale preview
        ((overlay, caption),) = result.overlays
        assert overlay.dtype == np.uint8 and overlay.shape[2] == 3
        assert overlay.shape[:2] == result.preview.shape
        assert caption.startswith(f"PNEUMONIA: p = {probability:.3f}")
        assert result.to_dict()["probabilities"] == {"PNEUMONIA": probability}


def test_referral_reasons_follow_the_stored_rule(trained_artifact):
    threshold = Predictor(trained_artifact).thresholds[0]
    film = sample_files("kermany")[3]
    analyzer = CaseAnalyzer(trained_artifact, mc_passes=0)
    probability = analyzer.analyze(film).findings[0].probability
    band = abs(probability - threshold) + 0.01  # a band that must include this film
    analyzer.rule = {**analyzer.rule, "band": band}
    result = analyzer.analyze(film)
    assert result.refer and "within" in result.referral_reasons[0]
    analyzer.rule = {**analyzer.rule, "band": max(0.0, band - 0.02)}
    assert not analyzer.analyze(film).refer


def test_bad_uploads_are_refused_with_the_file_name_and_reason(analyzer, bad_files):
    for name, (path, reason) in bad_files.items():
        with pytest.raises(UploadError) as error:
            analyzer.analyze(path, name)
        message = str(error.value)
        assert message.startswith(f"{name}: ") and reason in message
        assert str(path.parent) not in message  # the server's folder is never shown
        assert "Doe" not in message


def test_uploads_over_the_limit_are_refused(trained_artifact, tmp_path):
    film = sample_files("kermany")[0]
    limit_mb = (film.stat().st_size - 1) / MB
    small = CaseAnalyzer(trained_artifact, mc_passes=0, max_mb=limit_mb)
    with pytest.raises(UploadError, match=f"{film.name}: .* over the upload limit"):
        small.analyze(film)
    with pytest.raises(ValueError, match="max_mb"):
        CaseAnalyzer(trained_artifact, max_mb=0)


def test_render_case_always_fills_every_output(analyzer, bad_files, monkeypatch):
    good = render_case(analyzer, str(sample_files("kermany")[0]))
    assert len(good) == 8
    status, summary, bars, referral, overlays, preview, details, warning = good
    assert status == ""  # no error shown
    assert "cxr-probability" in bars and "PNEUMONIA" in bars
    assert ("Top finding" in summary) or ("No finding" in summary)
    assert referral.startswith("**Referral: ")
    assert len(overlays) == 1 and preview.dtype == np.uint8
    assert details["decision"] in {"PNEUMONIA", "negative"}

    assert details["ood"] is (warning != "") and "ood_score" in details
    refused = render_case(analyzer, str(bad_files["truncated.jpeg"][0]))
    assert len(refused) == 8
    assert "truncated.jpeg" in refused[0] and "truncated" in refused[0]
    assert refused[1:] == ("", "", "", [], None, None, "")
    assert "first" in render_case(analyzer, None)[0]

    def fail(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(analyzer, "analyze", fail)
    crashed = render_case(analyzer, str(sample_files("kermany")[0]))
    assert len(crashed) == 8 and "internal error" in crashed[0]


def test_examples_are_the_clearest_and_the_most_uncertain_films(trained_artifact, analyzer):
    candidates = bundled_candidates(trained_artifact.labels)
    assert candidates and all(p.parent.parent.name == "kermany" for p in candidates)
    candidates = candidates[::7]  # both classes, fewer than the limit: all are scored
    examples = dict((caption, path) for path, caption in choose_examples(analyzer, candidates))
    answers = Predictor(trained_artifact).predict_files(candidates)
    margin = answers.probabilities[:, 0] - answers.thresholds[0]
    order = list(np.argsort(np.abs(margin)))
    if margin.max() > 0:
        assert examples.pop("clear positive") == candidates[int(np.argmax(margin))]
        order.remove(int(np.argmax(margin)))
    if margin.min() < 0:
        assert examples.pop("clear negative") == candidates[int(np.argmin(margin))]
        order.remove(int(np.argmin(margin)))
    assert examples == {"uncertain: close to a threshold": candidates[order[0]]}
    nih = bundled_candidates(["Effusion", "Atelectasis"])
    assert nih and all(p.parent.parent.name == "nih" for p in nih)


def test_model_card_shows_the_stored_metrics(trained_artifact):
    card = model_card_markdown(trained_artifact)
    assert trained_artifact.meta["name"] in card and "PNEUMONIA" in card
    auc = trained_artifact.meta["metrics"]["validation"]["auc"]
    assert f"auc {auc:.3f}" in card
    assert "not a diagnostic device" in DISCLAIMER


def test_http_api_answers_and_the_model_loads_once(trained_artifact, bad_files, monkeypatch):
    pytest.importorskip("gradio", reason="the app needs the [app] extra")
    from gradio_client import Client, handle_file

    import cxr_keras.artifact.store
    from cxr_keras.serving.app import build_app

    def no_reload(*args, **kwargs):
        raise AssertionError("the app loaded a model while serving")

    app = build_app(trained_artifact, mc_passes=0, examples=[])
    monkeypatch.setattr(cxr_keras.artifact.store, "load_artifact", no_reload)
    port = free_port()
    app.queue().launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True
    )
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        film = sample_files("kermany")[0]
        start = time.perf_counter()
        outputs = client.predict(handle_file(str(film)), api_name="/analyze")
        assert time.perf_counter() - start < 60
        details = outputs[6]
        expected = Predictor(trained_artifact).predict_files([film]).probabilities[0, 0]
        assert details["file"] == film.name
        assert details["probabilities"]["PNEUMONIA"] == pytest.approx(expected, abs=1e-5)
        path, reason = bad_files["knee.dcm"]
        outputs = client.predict(handle_file(str(path)), api_name="/analyze")
        assert "knee.dcm" in outputs[0] and reason in outputs[0] and outputs[6] is None
        # the server is still up after a refused upload
        again = client.predict(handle_file(str(film)), api_name="/analyze")[6]
        assert again["probabilities"] == details["probabilities"]
    finally:
        app.close()


def test_four_clients_at_once_each_answer_is_logged_once(trained_artifact, bad_files, tmp_path):
    """The app's audit log under concurrent requests: 4 clients, answers computed in
    parallel, a refused upload between them; no row lost, none doubled, no DICOM tag."""
    pytest.importorskip("gradio", reason="the app needs the [app] extra")
    import threading

    from gradio_client import Client, handle_file

    from cxr_keras.artifact.audit_log import AuditLog
    from cxr_keras.serving.app import build_app

    dicom = pydicom.dcmread(sample_files("dicom")[0])
    dicom.PatientName, dicom.PatientID = "Doe^Jane", "SECRET-4711"
    dicom.InstitutionName, dicom.StudyDate = "St Elsewhere Hospital", "20261201"
    kermany = sample_files("kermany")
    # distinct films per client: Gradio stores identical uploads at one path, and the
    # first answer deletes it (a race of its own, not the log's)
    batches = [[*kermany[2 * i : 2 * i + 2], tmp_path / f"study{i}.dcm"] for i in range(4)]
    for i in range(4):
        dicom.SeriesNumber = i + 1  # a distinct file, the same pixels
        dicom.save_as(tmp_path / f"study{i}.dcm")
    audit = AuditLog(tmp_path / "audit.db")
    app = build_app(trained_artifact, mc_passes=0, examples=[], audit_log=audit)
    port = free_port()
    app.queue(default_concurrency_limit=4).launch(
        server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True
    )
    answers, failures = [], []

    def client_sends(films):
        try:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            for film in films:
                answers.append(client.predict(handle_file(str(film)), api_name="/analyze")[6])
        except Exception as exc:  # reported below, with the others
            failures.append(repr(exc))

    try:
        threads = [threading.Thread(target=client_sends, args=(films,)) for films in batches]
        refused = threading.Thread(target=client_sends, args=([bad_files["knee.dcm"][0]],))
        for thread in [*threads, refused]:
            thread.start()
        for thread in [*threads, refused]:
            thread.join(timeout=300)
    finally:
        app.close()
    assert not failures, failures
    rows = audit.read()
    audit.close()
    given = [a for a in answers if a is not None]
    assert len(given) == 12 and len(rows) == 12  # the refused knee film is not an answer
    assert set(rows["channel"]) == {"app"} and rows["id"].is_unique
    assert rows["source"].value_counts().to_dict() == {"jpeg": 8, "dicom": 4}
    assert rows["image_hash"].nunique() == 9  # 8 films, and one DICOM's pixels sent 4 times
    logged = sorted(round(p["PNEUMONIA"], 9) for p in rows["probabilities"])
    assert logged == sorted(round(a["probabilities"]["PNEUMONIA"], 9) for a in given)
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("audit.db*"))
    names = [film.stem for films in batches for film in films]
    for secret in ("Doe", "Jane", "SECRET-4711", "Elsewhere", "20261201", *names):
        assert secret.encode() not in stored, secret


def test_an_image_unlike_the_training_films_is_warned_about_and_referred(analyzer, tmp_path):
    photo = tmp_path / "holiday.png"
    rgb = np.random.default_rng(0).uniform(0, 255, (300, 400, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(photo)
    outputs = render_case(analyzer, str(photo))
    warning, details = outputs[7], outputs[6]
    assert "unlike the films this model was trained on" in warning
    assert "a colour image" in warning
    assert details["ood"] is True and details["refer"] is True
    assert details["referral_reasons"][0].startswith("out of distribution: a colour image")
    assert "Referral: yes" in outputs[3]
    assert outputs[1].startswith("**Out of distribution: not to be trusted.**")


def test_the_page_states_intended_use_and_limits(trained_artifact):
    from cxr_keras.serving.app import intended_use_markdown

    text = intended_use_markdown(trained_artifact)
    assert text.startswith("**Intended use:**") and "**Not for:**" in text
    assert "Known limits" in text and "Grad-CAM heatmaps show where" in text


def test_uploads_are_deleted_once_analysed_and_nothing_else_is(tmp_path, monkeypatch):
    from cxr_keras.serving.app import forget_upload

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    upload = tmp_path / "uploads" / "3f2a" / "patient.dcm"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"DICM tags")
    elsewhere = tmp_path / "mine" / "film.png"
    elsewhere.parent.mkdir()
    elsewhere.write_bytes(b"png")
    forget_upload(str(upload))
    forget_upload(str(elsewhere))
    forget_upload(None)
    assert not upload.exists() and not upload.parent.exists()
    assert (tmp_path / "uploads").is_dir() and elsewhere.exists()
