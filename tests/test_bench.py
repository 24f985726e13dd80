import json

import pytest

from tfesi_desktop.cli import main


def test_bench_prints_every_figure_as_json(capsys):
    pytest.importorskip("tensorflow")
    assert main(["bench", "--quick", "--json"]) == 0
    f = json.loads(capsys.readouterr().out)
    for key in ("process_start_to_first_prediction_s", "model_load_ms_median",
                "predict_gradcam_ms_median", "predict_gradcam_ms_p90",
                "stable_prediction_ms_median", "stable_prediction_ms_p90",
                "keras_model_predict_ms_median", "speedup_vs_keras_predict",
                "scan_headers_s", "scan_headers_files", "decode_one_slice_ms"):
        assert f[key] > 0, key
    assert f["predict_gradcam_ms_median"] <= f["predict_gradcam_ms_p90"]
    assert f["stable_prediction_rois"] == 13
    assert f["runtime_process_imported_tensorflow"] is False
    # the runtime the program uses is faster than Keras on the same input, in the same run
    assert f["speedup_vs_keras_predict"] > 1
