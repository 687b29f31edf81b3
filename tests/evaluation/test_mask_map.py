import numpy as np

from tfunmask.evaluation import mask_map


def test_composites_paste_the_content_by_each_map():
    rng = np.random.default_rng(0)
    masked, content = rng.uniform(-1, 1, (2, 2, 8, 8, 3)).astype(np.float32)
    truth = np.zeros((2, 8, 8), np.uint8)
    truth[:, 4:] = 255
    predicted = np.full((2, 8, 8, 1), 0.25, np.float32)
    pasted = mask_map.composites(masked, content, predicted, truth)
    np.testing.assert_array_equal(pasted["true map"][:, 4:], content[:, 4:])
    np.testing.assert_array_equal(pasted["true map"][:, :4], masked[:, :4])
    np.testing.assert_allclose(pasted["predicted map"], 0.25 * content + 0.75 * masked, rtol=1e-6)
