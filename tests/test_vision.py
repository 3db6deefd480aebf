import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from graphrec.errors import DataError, UsageError
from graphrec.vision import FC7_DIM, Fc7Extractor, RandomWeightsWarning


@pytest.fixture(scope="module")
def extractor():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RandomWeightsWarning)
        return Fc7Extractor("random", seed=1)


def _images():
    return [Image.new("RGB", (80, 60), (200, 30, 30)), Image.new("L", (40, 40), 90),
            Image.new("RGB", (100, 100), (20, 40, 220))]


def test_shape_nonnegative_and_same_image_same_vector(extractor):
    images = _images()
    x = extractor.extract(images + [images[0]])
    assert x.shape == (4, FC7_DIM) and x.dtype == np.float32
    assert (x >= 0).all() and (x > 0).any()
    np.testing.assert_array_equal(x[0], x[3])
    assert not np.allclose(x[0], x[2])


def test_random_is_loud_and_deterministic_per_seed(extractor):
    with pytest.warns(RandomWeightsWarning, match="NOT ImageNet"):
        again = Fc7Extractor("random", seed=1)
    np.testing.assert_array_equal(again.extract(_images()), extractor.extract(_images()))
    with pytest.warns(RandomWeightsWarning):
        other = Fc7Extractor("random", seed=2)
    assert not np.allclose(other.extract(_images()), extractor.extract(_images()))
    assert extractor.spec == {"model": "alexnet", "layer": "fc7", "weights": "random", "seed": 1, "path": None, "sha256": None}


def test_matches_torchvision_classifier_5(extractor):
    from torchvision.models import alexnet
    from torchvision.models.feature_extraction import create_feature_extractor

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = alexnet(weights=None).eval()
    reference = create_feature_extractor(model, return_nodes={"classifier.5": "fc7"})
    batch = torch.stack([extractor.transform(im.convert("RGB")) for im in _images()])
    with torch.inference_mode():
        expected = reference(batch)["fc7"].numpy()
    np.testing.assert_allclose(extractor.extract(_images()), expected, rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_and_from_spec(tmp_path, extractor):
    from torchvision.models import alexnet

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        model = alexnet(weights=None)
    path = tmp_path / "alexnet.pt"
    torch.save(model.state_dict(), path)
    loaded = Fc7Extractor(path)
    assert loaded.spec["weights"] == "file" and loaded.spec["sha256"] and loaded.spec["path"] == str(path.resolve())
    np.testing.assert_allclose(loaded.extract(_images()), extractor.extract(_images()), rtol=1e-5, atol=1e-6)
    rebuilt = Fc7Extractor.from_spec(loaded.spec)
    np.testing.assert_array_equal(rebuilt.extract(_images()), loaded.extract(_images()))
    np.testing.assert_array_equal(Fc7Extractor.from_spec(extractor.spec).extract(_images()), extractor.extract(_images()))
    path.write_bytes(path.read_bytes()[:-10] + b"0123456789")  # the file changed since
    with pytest.raises(UsageError, match="changed"):
        Fc7Extractor.from_spec(loaded.spec)


def test_bad_weights_give_one_clear_error(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        Fc7Extractor(tmp_path / "missing.pt")
    wrong = tmp_path / "wrong.pt"
    torch.save({"weight": torch.zeros(3)}, wrong)
    with pytest.raises(DataError, match="not a torchvision alexnet state_dict"):
        Fc7Extractor(wrong)
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="no CUDA"):
            Fc7Extractor("random", device="cuda")
