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
    # the stable prediction looks at the chosen slice and one on each side (issue 22): 13 ROIs
    # on the chosen one, 5 on each neighbour, in one call; the single slice is measured beside
    assert f["stable_prediction_slices"] == 3 and f["stable_prediction_inputs"] == 23
    assert f["single_slice_prediction_ms_median"] <= f["single_slice_prediction_ms_p90"]
    assert f["runtime_process_imported_tensorflow"] is False
    # the runtime the program uses is faster than Keras on the same input, in the same run
    assert f["speedup_vs_keras_predict"] > 1
    # the window's stalls are the worst of several fresh processes, each listed
    assert "gui_error" not in f, f.get("gui_error")
    runs = f["gui_longest_stall_runs_ms"]
    assert len(runs) == f["gui_runs"] == 2 and f["gui_longest_stall_ms"] == max(runs)
