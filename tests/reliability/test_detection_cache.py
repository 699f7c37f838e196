"""Test-time detections are reused only for the same weights, net (with the settings its
copy holds), image set and test settings."""
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TEST_DEF = os.path.join(ROOT, 'models', 'toy', 'TOY', 'faster_rcnn_end2end', 'test.prototxt')


@pytest.fixture
def setup(tmp_path, monkeypatch):
    import caffe
    from datasets.toy import generate_toy_dataset
    from fast_rcnn import test as test_module
    from fast_rcnn.experiment import Experiment, test_experiment
    generate_toy_dataset(str(tmp_path / 'data' / 'toy'), num_train=1, num_test=3)
    calls = []
    real = test_module.im_detect
    monkeypatch.setattr(test_module, 'im_detect',
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    weights = str(tmp_path / 'toy.caffemodel')

    def save_weights(seed):
        caffe.set_random_seed(seed)
        caffe.Net(TEST_DEF, caffe.TEST).save(weights)

    def run(**test_settings):
        """Tests the toy model as tools/test_net.py would, with these TEST settings; returns how
        many images were detected (0: the saved detections were reused)."""
        experiment = Experiment.from_files([], {
            'DATA_DIR': str(tmp_path / 'data'), 'ROOT_DIR': str(tmp_path / 'root'),
            'TEST': dict({'SCALES': [120], 'MAX_SIZE': 200, 'RPN_POST_NMS_TOP_N': 30,
                          'MAX_PER_IMAGE': 10}, **test_settings)})
        testing = test_experiment(experiment, TEST_DEF, weights, 'toy_test')
        del calls[:]
        testing.run()
        return len(calls)

    save_weights(1)
    return run, save_weights, tmp_path / 'data' / 'toy' / 'ImageSets' / 'Main' / 'test.txt'


def test_detections_are_reused_only_for_the_same_inputs(setup):
    run, save_weights, image_set = setup
    assert run() == 3
    assert run() == 0                     # same everything: reused
    save_weights(2)                       # other weights under the same file name
    assert run() == 3
    assert run() == 0
    assert run(NMS=0.5) == 3              # another test setting (the net's test settings)
    assert run(NMS=0.5) == 0
    assert run(NMS=0.5, RPN_POST_NMS_TOP_N=20) == 3  # another setting of the proposal layer
    ids = image_set.read_text().split()
    image_set.write_text('\n'.join(ids[:2]) + '\n')  # another image set under the same name
    assert run(NMS=0.5, RPN_POST_NMS_TOP_N=20) == 2
