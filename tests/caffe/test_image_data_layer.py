"""ImageData layer against images read with OpenCV from the same list: list order, root_folder
joined as a string, resize, gray, shuffle with Caffe's draws, rand_skip, and errors naming the
list file and line."""
import cv2
import numpy as np
import pytest

import caffe
from caffe.common import CaffeError
from caffe.rng import CaffeRNG
from caffe.testing import build_layer


def write_images(folder, n, size=(6, 5), seed=0):
    """n PNG images of (height, width) in folder; returns their names and arrays (BGR)."""
    rs = np.random.RandomState(seed)
    folder.mkdir(exist_ok=True)
    names, arrays = [], []
    for i in range(n):
        im = rs.randint(0, 256, size=size + (3,)).astype(np.uint8)
        name = 'im %d.png' % i      # a space in the name: the label is after the last one
        cv2.imwrite(str(folder / name), im)
        names.append(name)
        arrays.append(im)
    return names, arrays


def write_list(path, names, labels):
    path.write_text(''.join('%s %d\n' % (n, l) for n, l in zip(names, labels)))
    return str(path)


def image_layer(source, root, batch=2, param='', transform='', phase=caffe.TEST):
    text = ('name: "images" type: "ImageData" top: "data" top: "label" image_data_param { '
            'source: "%s" root_folder: "%s" batch_size: %d %s } transform_param { %s }'
            % (source, root, batch, param, transform))
    return build_layer(text, [], phase=phase)


def forward(layer, top):
    layer.forward([], top)
    return top[0].data.copy(), top[1].data.copy()


def test_images_in_list_order_with_labels_wrapping(tmp_path):
    names, arrays = write_images(tmp_path / 'imgs', 3)
    source = write_list(tmp_path / 'list.txt', names, [7, 8, 9])
    layer, _, top = image_layer(source, str(tmp_path / 'imgs') + '/', batch=2)
    assert top[0].shape == (2, 3, 6, 5)
    expected = [a.transpose(2, 0, 1).astype(np.float32) for a in arrays]
    data, label = forward(layer, top)
    np.testing.assert_array_equal(data, [expected[0], expected[1]])
    np.testing.assert_array_equal(label, [7, 8])
    data, label = forward(layer, top)
    np.testing.assert_array_equal(data, [expected[2], expected[0]])
    np.testing.assert_array_equal(label, [9, 7])


def test_resize_gray_and_transform(tmp_path):
    names, _ = write_images(tmp_path / 'imgs', 2, size=(9, 11))
    source = write_list(tmp_path / 'list.txt', names, [0, 1])
    layer, _, top = image_layer(source, str(tmp_path / 'imgs') + '/', batch=2,
                                param='new_height: 4 new_width: 7 is_color: false',
                                transform='mean_value: 100 scale: 0.5')
    data, _ = forward(layer, top)
    assert data.shape == (2, 1, 4, 7)
    for i, name in enumerate(names):
        gray = cv2.imread(str(tmp_path / 'imgs' / name), cv2.IMREAD_GRAYSCALE)
        resized = cv2.resize(gray, (7, 4))        # OpenCV's default: bilinear
        expected = (resized.astype(np.float32) - np.float32(100)) * np.float32(0.5)
        np.testing.assert_array_equal(data[i, 0], expected)


def test_root_folder_is_joined_as_a_string(tmp_path):
    names, arrays = write_images(tmp_path, 1)
    (tmp_path / ('pre' + names[0])).write_bytes((tmp_path / names[0]).read_bytes())
    source = write_list(tmp_path / 'list.txt', names, [1])
    layer, _, top = image_layer(source, str(tmp_path / 'pre'), batch=1)
    np.testing.assert_array_equal(forward(layer, top)[0][0], arrays[0].transpose(2, 0, 1))


def test_shuffle_and_rand_skip_follow_caffes_draws(tmp_path):
    n = 7
    names, _ = write_images(tmp_path / 'imgs', n, size=(2, 2))
    source = write_list(tmp_path / 'list.txt', names, range(n))
    caffe.set_random_seed(31)
    layer, _, top = image_layer(source, str(tmp_path / 'imgs') + '/', batch=n,
                                param='shuffle: true rand_skip: 5')
    # Setup draws from the runtime stream: the shuffle generator's seed, then the skip.
    stream = CaffeRNG(31)
    shuffler = CaffeRNG(stream.raw())
    order = list(range(n))
    shuffler.shuffle(order)
    skip = stream.raw() % 5
    _, label = forward(layer, top)
    first = order[skip:]
    # At the end of the list the layer shuffles it again and starts from its top.
    shuffler.shuffle(order)
    np.testing.assert_array_equal(label, first + order[:n - len(first)])


def test_errors_name_the_list_and_line(tmp_path):
    names, _ = write_images(tmp_path / 'imgs', 2)
    root = str(tmp_path / 'imgs') + '/'
    with pytest.raises(CaffeError, match='ImageData layer .*Could not open file .*none.txt'):
        image_layer(str(tmp_path / 'none.txt'), root)
    bad = tmp_path / 'bad.txt'
    bad.write_text('%s 1\n%s x\n' % tuple(names))
    with pytest.raises(CaffeError, match=r'bad.txt:2: expected "<image file> <integer label>"'):
        image_layer(str(bad), root)
    (tmp_path / 'empty.txt').write_text('\n\n')
    with pytest.raises(CaffeError, match='image list .*empty.txt is empty'):
        image_layer(str(tmp_path / 'empty.txt'), root)
    missing = write_list(tmp_path / 'missing.txt', [names[0], 'gone.png'], [0, 1])
    layer, _, top = image_layer(missing, root, batch=2)
    with pytest.raises(CaffeError, match=r'Could not open file .*gone.png .*line 2 of .*'
                                         r'missing.txt'):
        forward(layer, top)
    (tmp_path / 'imgs' / 'junk.png').write_bytes(b'not a png')
    junk = write_list(tmp_path / 'junk.txt', ['junk.png'], [0])
    with pytest.raises(CaffeError, match=r'Could not read image .*junk.png .*line 1'):
        image_layer(junk, root)
    with pytest.raises(CaffeError, match='new_height and new_width must be set together'):
        image_layer(write_list(tmp_path / 'ok.txt', names, [0, 1]), root, param='new_height: 3')
    cv2.imwrite(str(tmp_path / 'imgs' / 'big.png'), np.zeros((8, 8, 3), np.uint8))
    mixed = write_list(tmp_path / 'mixed.txt', [names[0], 'big.png'], [0, 1])
    layer, _, top = image_layer(mixed, root, batch=2)
    with pytest.raises(CaffeError, match=r'batch takes images of one size.*line 2 of'):
        forward(layer, top)
