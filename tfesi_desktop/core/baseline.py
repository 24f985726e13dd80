"""A handcrafted-feature baseline, as the paper's Discussion proposes: scikit-image texture and
shape features of the same canonical ROI the network sees, with standardised logistic
regression (scikit-learn). No TensorFlow."""

from __future__ import annotations

import numpy as np
from scipy.stats import kurtosis, skew
from skimage.feature import graycomatrix, graycoprops, hog, local_binary_pattern

GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation", "ASM")
LBP_POINTS, LBP_RADIUS = 8, 1


def features(image: np.ndarray) -> np.ndarray:
    """Feature vector of one model input ((100, 100) or (100, 100, 3), values 0..255):
    GLCM properties (32 grey levels, distances 1 and 3, four angles, averaged over angles),
    a uniform LBP histogram, HOG (25-pixel cells), intensity statistics."""
    img = np.asarray(image, float)
    if img.ndim == 3:
        img = img[..., 0]
    levels = np.clip(img / 256 * 32, 0, 31).astype(np.uint8)
    glcm = graycomatrix(levels, distances=[1, 3], angles=[0, np.pi / 4, np.pi / 2,
                                                          3 * np.pi / 4], levels=32,
                        symmetric=True, normed=True)
    g = [graycoprops(glcm, p).mean(axis=1) for p in GLCM_PROPS]  # per distance
    lbp = local_binary_pattern(img.astype(np.uint8), LBP_POINTS, LBP_RADIUS, method="uniform")
    lbp_hist, _ = np.histogram(lbp, bins=LBP_POINTS + 2, range=(0, LBP_POINTS + 2),
                               density=True)
    h = hog(img, orientations=9, pixels_per_cell=(25, 25), cells_per_block=(2, 2),
            feature_vector=True)
    v = img.ravel()
    stats = [v.mean(), v.std(), *np.percentile(v, [5, 25, 50, 75, 95]), skew(v), kurtosis(v),
             np.mean(v > 180), np.mean(v < 60)]
    return np.concatenate([np.ravel(g), lbp_hist, h, stats]).astype(np.float64)


def feature_matrix(images: np.ndarray) -> np.ndarray:
    return np.stack([features(im) for im in images])


def make_classifier(seed: int = 0, C: float = 0.1):
    """Standardisation + L2 logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000,
                                                              random_state=seed))


def fit_predict(feats: np.ndarray, labels: np.ndarray, train_idx, test_idx,
                seed: int = 0) -> np.ndarray:
    """Probabilities of a favourable outcome for ``test_idx`` from a model fit on
    ``train_idx``."""
    clf = make_classifier(seed)
    clf.fit(feats[train_idx], labels[train_idx])
    return clf.predict_proba(feats[test_idx])[:, 1]
