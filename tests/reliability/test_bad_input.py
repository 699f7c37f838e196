"""Bad input to the command-line tools: each case gets one 'error:' line on stderr naming the bad
file, a non-zero exit and no Python traceback. The broken files are made here, in tmp_path."""
import os
import shutil

import numpy as np
import pytest

from tool_runs import CFGS, SOLVER, TEST_DEF, assert_one_error, run_tool


@pytest.fixture(scope='module')
def toy_source(tmp_path_factory):
    from datasets.toy import generate_toy_dataset
    data = tmp_path_factory.mktemp('toy_source')
    generate_toy_dataset(str(data / 'toy'), num_train=2, num_test=2)
    return str(data / 'toy')


@pytest.fixture
def data_dir(tmp_path, toy_source):
    """A fresh copy of the small toy dataset (DATA_DIR/toy) for one test to break."""
    shutil.copytree(toy_source, str(tmp_path / 'data' / 'toy'))
    return tmp_path / 'data'


def train(data_dir, *extra, iters='1'):
    """train_net.py on the small toy data; `extra` options go before the config pairs, and its
    own --set pairs (they must come last) end the one --set list (--set takes the rest of the
    command line), after the small-scale pairs they may override."""
    extra = list(extra)
    sets = []
    if '--set' in extra:
        at = extra.index('--set')
        extra, sets = extra[:at], extra[at + 1:]
    args = ['--gpu', 'cpu', '--solver', SOLVER, '--imdb', 'toy_train', '--iters', iters] + CFGS
    args += extra
    args += ['--set', 'DATA_DIR', str(data_dir), 'ROOT_DIR', str(data_dir.parent / 'root'),
             'TRAIN.SCALES', '[120]', 'TRAIN.MAX_SIZE', '200'] + sets
    return run_tool('train_net.py', args)


def image(data_dir, k=1):
    return data_dir / 'toy' / 'JPEGImages' / ('train_%06d.jpg' % k)


def annotation(data_dir, k=1):
    return data_dir / 'toy' / 'Annotations' / ('train_%06d.xml' % k)


# Images -----------------------------------------------------------------------------------------

def test_missing_image(data_dir):
    os.remove(image(data_dir))
    assert_one_error(train(data_dir), image(data_dir).parent, "'train_000001'")


def test_empty_image(data_dir):
    open(image(data_dir), 'wb').close()
    assert_one_error(train(data_dir), image(data_dir), 'empty')


def test_not_an_image(data_dir):
    image(data_dir).write_text('this is not a JPEG\n')
    assert_one_error(train(data_dir), image(data_dir), 'not an image')


def test_truncated_image(data_dir):
    data = image(data_dir).read_bytes()
    image(data_dir).write_bytes(data[:len(data) // 3])
    assert_one_error(train(data_dir), image(data_dir), 'truncated')


def test_image_of_another_size_than_its_annotation_says(data_dir):
    import re
    path = annotation(data_dir)
    text = path.read_text()
    width = int(re.search(r'<width>(\d+)</width>', text).group(1))
    path.write_text(text.replace('<width>%d</width>' % width, '<width>%d</width>' % (width + 7)))
    line = assert_one_error(train(data_dir), image(data_dir), 'its annotation')
    assert 'is %dx' % width in line and 'says %dx' % (width + 7) in line


def test_damaged_png_body_is_found_before_training(data_dir):
    import cv2
    jpg = image(data_dir)
    png = jpg.with_suffix('.png')
    cv2.imwrite(str(png), cv2.imread(str(jpg)))
    os.remove(str(jpg))
    data = bytearray(png.read_bytes())
    data[data.find(b'IDAT') + 100] ^= 0xFF  # cv2.imread would refuse it mid-training
    png.write_bytes(bytes(data))
    code, out, err = train(data_dir)
    assert_one_error((code, out, err), png, 'damaged')
    assert 'Solving...' not in out


def test_exif_rotated_image_is_checked_at_the_size_it_decodes_to(data_dir):
    # Stored a quarter turn back, with EXIF orientation 6 (turn right to show): cv2.imread
    # decodes it upright, at the size its annotation says.
    import cv2
    from PIL import Image
    path = image(data_dir)
    upright = cv2.imread(str(path))
    stored = np.ascontiguousarray(np.rot90(upright, 1)[:, :, ::-1])
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(str(path), exif=exif.tobytes(), quality=95)
    assert cv2.imread(str(path)).shape == upright.shape
    code, out, err = train(data_dir)
    assert code == 0, err


def test_image_set_id_without_image(data_dir):
    with open(data_dir / 'toy' / 'ImageSets' / 'Main' / 'train.txt', 'a') as f:
        f.write('train_999999\n')
    assert_one_error(train(data_dir), 'train_999999')


def test_empty_dataset(data_dir):
    path = data_dir / 'toy' / 'ImageSets' / 'Main' / 'train.txt'
    path.write_text('')
    assert_one_error(train(data_dir), path, 'empty')


# Annotations ------------------------------------------------------------------------------------

def _edit_annotation(data_dir, old, new):
    path = annotation(data_dir)
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return path


def test_malformed_xml(data_dir):
    path = annotation(data_dir)
    path.write_text(path.read_text()[:-40])
    assert_one_error(train(data_dir), path, 'malformed XML')


@pytest.mark.parametrize('field', ['size', 'bndbox'])
def test_annotation_missing_field(data_dir, field):
    import re
    path = annotation(data_dir)
    text = re.sub(r'<%s>.*?</%s>' % (field, field), '', path.read_text(), count=1,
                  flags=re.S)
    path.write_text(text)
    assert_one_error(train(data_dir), path, field)


def test_annotation_unknown_class(data_dir):
    import re
    path = annotation(data_dir)
    path.write_text(re.sub(r'<name>\w+</name>', '<name>unicorn</name>', path.read_text(),
                           count=1))
    assert_one_error(train(data_dir), path, 'unicorn')


# Bad boxes are skipped (or clipped when they stick out of the image) with a warning naming the
# file and the object, as lib/datasets/voc_xml.py documents; training goes on.
@pytest.mark.parametrize('case,effect', [('x2_before_x1', 'skipped: xmax < xmin'),
                                         ('zero_area', 'skipped: zero-area'),
                                         ('outside', 'clipped to the')])
def test_annotation_bad_box_is_skipped_with_a_warning(data_dir, case, effect):
    import re
    path = annotation(data_dir)
    text = path.read_text()
    xmin = int(re.search(r'<xmin>(\d+)</xmin>', text).group(1))
    if case == 'x2_before_x1':
        text = re.sub(r'<xmax>\d+</xmax>', '<xmax>%d</xmax>' % (xmin - 1), text, count=1)
    elif case == 'zero_area':
        text = re.sub(r'<xmax>\d+</xmax>', '<xmax>%d</xmax>' % xmin, text, count=1)
    else:
        text = re.sub(r'<ymax>\d+</ymax>', '<ymax>99999</ymax>', text, count=1)
    path.write_text(text)
    code, out, err = train(data_dir)
    assert code == 0, err
    assert re.search(r'%s: object 0 .*%s' % (re.escape(str(path)), effect), out + err)


def test_malformed_coco_json(tmp_path):
    ann = tmp_path / 'data' / 'coco' / 'annotations'
    ann.mkdir(parents=True)
    path = ann / 'instances_minival2014.json'
    path.write_text('{"images": [')
    result = run_tool('train_net.py', ['--gpu', 'cpu', '--solver', SOLVER, '--imdb',
                                       'coco_2014_minival', '--iters', '1',
                                       '--set', 'DATA_DIR', str(tmp_path / 'data')])
    assert_one_error(result, path, 'malformed JSON')


# Nets and solvers -------------------------------------------------------------------------------

TINY_NET = '''name: "tiny"
input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 3 } }
'''


def _net_case(tmp_path, text):
    path = tmp_path / 'net.prototxt'
    path.write_text(text)
    return path


def _test_net(data, prototxt, model):
    return run_tool('test_net.py', ['--gpu', 'cpu', '--def', str(prototxt), '--net', str(model),
                                    '--imdb', 'toy_test', '--set', 'DATA_DIR', str(data)])


@pytest.fixture(scope='module')
def toy_data(toy_source):
    """DATA_DIR of the shared small toy dataset, for tests that do not change it."""
    return os.path.dirname(toy_source)


@pytest.fixture
def tiny_model(tmp_path):
    import caffe
    path = _net_case(tmp_path, TINY_NET)
    model = tmp_path / 'tiny.caffemodel'
    caffe.Net(str(path), caffe.TEST).save(str(model))
    return path, model


def test_prototxt_syntax_error_names_file_and_line(tmp_path, tiny_model, toy_data):
    _, model = tiny_model
    path = _net_case(tmp_path, TINY_NET.replace('num_output: 2', 'num_output 2 }'))
    line = assert_one_error(_test_net(toy_data, path, model), path)
    assert '%s:4:' % path in line


def test_unknown_layer_type(tmp_path, tiny_model, toy_data):
    _, model = tiny_model
    path = _net_case(tmp_path, TINY_NET.replace('"Convolution"', '"Convolutoin"'))
    assert_one_error(_test_net(toy_data, path, model), 'Convolutoin')


def test_missing_bottom(tmp_path, tiny_model, toy_data):
    _, model = tiny_model
    path = _net_case(tmp_path, TINY_NET.replace('bottom: "data"', 'bottom: "dta"'))
    assert_one_error(_test_net(toy_data, path, model), 'dta')


def test_python_layer_module_not_importable(tmp_path, tiny_model, toy_data):
    _, model = tiny_model
    path = _net_case(tmp_path, TINY_NET + '''layer { name: "py" type: "Python" bottom: "conv"
        top: "out" python_param { module: "no_such_module_xyz" layer: "L" } }\n''')
    assert_one_error(_test_net(toy_data, path, model), 'no_such_module_xyz')


def test_weights_that_share_no_layer_with_the_net_are_reported_loudly(data_dir, tiny_model):
    import re
    _, model = tiny_model  # a net with one layer, "conv": the toy net has none of that name
    code, out, err = train(data_dir, '--weights', str(model))
    assert code == 0, err
    assert re.search(r'Copied the weights of 0 of the (\d+) layers with parameters from %s'
                     % re.escape(str(model)), out)
    assert 'WARNING' in err and 'NOTHING WAS COPIED' in err and str(model) in err


def test_weights_of_the_same_net_are_all_copied(data_dir, tmp_path):
    import re
    import caffe
    model = tmp_path / 'toy.caffemodel'
    caffe.Net(TEST_DEF, caffe.TEST).save(str(model))
    code, out, err = train(data_dir, '--weights', str(model))
    assert code == 0, err
    m = re.search(r'Copied the weights of (\d+) of the (\d+) layers with parameters', out)
    assert m and m.group(1) == m.group(2) and int(m.group(1)) >= 10, out
    assert 'WARNING' not in err


def test_solver_pointing_at_missing_net(data_dir, tmp_path):
    solver = tmp_path / 'solver.prototxt'
    solver.write_text('train_net: "%s"\nbase_lr: 0.01\nlr_policy: "fixed"\n'
                      % (tmp_path / 'nowhere.prototxt'))
    result = run_tool('train_net.py', ['--gpu', 'cpu', '--solver', str(solver), '--imdb',
                                       'toy_train', '--iters', '1'] + CFGS
                      + ['--set', 'DATA_DIR', str(data_dir)])
    assert_one_error(result, 'nowhere.prototxt')


def test_truncated_caffemodel(tmp_path, tiny_model, toy_data):
    path, model = tiny_model
    data = model.read_bytes()
    model.write_bytes(data[:len(data) // 2])
    assert_one_error(_test_net(toy_data, path, model), model)


def test_caffemodel_not_a_netparameter(tmp_path, tiny_model, toy_data):
    path, model = tiny_model
    model.write_bytes(b'\xff\xfe\x00garbage' * 10)
    assert_one_error(_test_net(toy_data, path, model), model)


def test_caffemodel_shape_mismatch(tmp_path, tiny_model, toy_data):
    _, model = tiny_model
    path = _net_case(tmp_path, TINY_NET.replace('num_output: 2', 'num_output: 5'))
    line = assert_one_error(_test_net(toy_data, path, model), model, 'conv')
    assert '(5, 3, 3, 3)' in line and '(2, 3, 3, 3)' in line


def test_missing_weights(tmp_path, tiny_model, toy_data):
    path, _ = tiny_model
    assert_one_error(_test_net(toy_data, path, tmp_path / 'missing.caffemodel'),
                     tmp_path / 'missing.caffemodel')


# Config and device ------------------------------------------------------------------------------

def test_unknown_cfg_key(data_dir):
    assert_one_error(train(data_dir, '--set', 'TRAIN.NO_SUCH_KEY', '1'), 'NO_SUCH_KEY')


def test_wrong_typed_cfg_value(data_dir):
    assert_one_error(train(data_dir, '--set', 'TRAIN.IMS_PER_BATCH', 'many'), 'IMS_PER_BATCH')


@pytest.mark.parametrize('key,value', [('TRAIN.SCALES', '(0,)'), ('TRAIN.MAX_SIZE', '0'),
                                       ('TRAIN.BATCH_SIZE', '-64'), ('TRAIN.IMS_PER_BATCH', '0'),
                                       ('RNG_SEED', '-1'), ('TRAIN.FG_FRACTION', '2.0')])
def test_cfg_value_out_of_range(data_dir, key, value):
    assert_one_error(train(data_dir, '--set', key, value), '--set: %s expects' % key)


def test_yaml_error_in_cfg_file_is_one_line(data_dir, tmp_path):
    path = tmp_path / 'bad.yml'
    path.write_text('TRAIN:\n  SCALES: [600\n  MAX_SIZE: 1000\n')
    line = assert_one_error(train(data_dir, '--cfg', str(path)), '%s:3:11' % path)
    assert line.count(str(path)) == 1


def test_malformed_set(data_dir):
    assert_one_error(train(data_dir, '--set', 'TRAIN.IMS_PER_BATCH'), '--set')


def test_unknown_key_in_cfg_file(data_dir, tmp_path):
    path = tmp_path / 'bad.yml'
    path.write_text('TRAIN:\n  NO_SUCH_KEY: 3\n')
    assert_one_error(train(data_dir, '--cfg', str(path)), 'NO_SUCH_KEY')


def _has_gpu():
    try:
        import pycuda.driver as cuda
        cuda.init()
        return cuda.Device.count() > 0
    except Exception:
        return False


@pytest.mark.skipif(_has_gpu(), reason='needs a machine without a GPU')
def test_gpu_asked_where_none(tmp_path, tiny_model):
    path, model = tiny_model
    result = run_tool('test_net.py', ['--gpu', '0', '--def', str(path), '--net', str(model),
                                      '--imdb', 'toy_test'])
    assert_one_error(result, 'GPU 0', '--gpu -1')


# The other tools --------------------------------------------------------------------------------

def test_demo_unreadable_image(tmp_path, tiny_model):
    path, model = tiny_model
    bad = tmp_path / 'photo.jpg'
    bad.write_bytes(b'not an image')
    classes = tmp_path / 'classes.txt'
    classes.write_text('a\n')
    result = run_tool('demo.py', ['--gpu', 'cpu', '--def', str(path), '--model', str(model),
                                  '--classes', str(classes), '--images', str(bad),
                                  '--out', str(tmp_path / 'out')])
    assert_one_error(result, bad)


def test_rpn_generate_missing_weights(tmp_path, tiny_model):
    path, _ = tiny_model
    result = run_tool('rpn_generate.py', ['--gpu', 'cpu', '--def', str(path), '--net',
                                          str(tmp_path / 'gone.caffemodel'), '--imdb',
                                          'toy_test'])
    assert_one_error(result, tmp_path / 'gone.caffemodel')


def test_reval_corrupt_detections(tmp_path, data_dir):
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'detections.pkl').write_bytes(b'\x80\x04garbage')
    result = run_tool('reval.py', [str(out), '--imdb', 'toy_test', '--set', 'DATA_DIR',
                                   str(data_dir)])
    assert_one_error(result, out / 'detections.pkl')


def test_eval_recall_corrupt_proposals(tmp_path, data_dir):
    bad = tmp_path / 'proposals.pkl'
    bad.write_bytes(b'')
    result = run_tool('eval_recall.py', ['--imdb', 'toy_test', '--rpn-file', str(bad),
                                         '--set', 'DATA_DIR', str(data_dir)])
    assert_one_error(result, bad)


def test_debug_shows_the_traceback(data_dir):
    os.remove(image(data_dir))
    code, out, err = train(data_dir, '--debug')
    assert code != 0 and 'Traceback' in err
