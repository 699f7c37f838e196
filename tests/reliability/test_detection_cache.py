"""Test-time detections are reused only for the same weights, net, image set and TEST settings."""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEST_DEF = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_end2end', 'test.prototxt')


@pytest.fixture
def setup(tmp_path, monkeypatch):
    import caffe
    from datasets.toy import generate_toy_dataset
    from fast_rcnn import test as test_module
    from fast_rcnn.config import cfg
    generate_toy_dataset(str(tmp_path / 'data' / 'toy'), num_train=1, num_test=3)
    cfg.DATA_DIR = str(tmp_path / 'data')
    cfg.ROOT_DIR = str(tmp_path / 'root')
    cfg.TEST.HAS_RPN = True
    cfg.TEST.SCALES = (120,)
    cfg.TEST.MAX_SIZE = 200
    cfg.TEST.RPN_POST_NMS_TOP_N = 30
    calls = []
    real = test_module.im_detect
    monkeypatch.setattr(test_module, 'im_detect',
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    weights = str(tmp_path / 'toy.caffemodel')

    def save_weights(seed):
        caffe.set_random_seed(seed)
        caffe.Net(TEST_DEF, caffe.TEST).save(weights)

    def run():
        from datasets.factory import get_imdb
        net = caffe.Net(TEST_DEF, weights, caffe.TEST)
        net.name = 'toy'
        del calls[:]
        test_module.test_net(net, get_imdb('toy_test'), max_per_image=10,
                             model_files=(TEST_DEF, weights))
        return len(calls)

    save_weights(1)
    return run, save_weights, tmp_path / 'data' / 'toy' / 'ImageSets' / 'Main' / 'test.txt'


def test_detections_are_reused_only_for_the_same_inputs(setup):
    from fast_rcnn.config import cfg
    run, save_weights, image_set = setup
    assert run() == 3
    assert run() == 0                     # same everything: reused
    save_weights(2)                       # other weights under the same file name
    assert run() == 3
    assert run() == 0
    cfg.TEST.NMS = 0.5                    # another test setting
    assert run() == 3
    ids = image_set.read_text().split()
    image_set.write_text('\n'.join(ids[:2]) + '\n')  # another image set under the same name
    assert run() == 2
