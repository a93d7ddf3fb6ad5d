"""The constructor-argument checks that every model of the package uses."""
import pytest

from mmseg_refinenet.models.utils import (check_channels,
                                          check_non_negative_int,
                                          check_odd_kernel_size, check_one_of,
                                          check_positive_int)


@pytest.mark.parametrize('check, good, bad', [
    (check_positive_int, [1, 7], [0, -3, 2.0, True, '4', None]),
    (check_non_negative_int, [0, 5], [-1, 1.0, False, None]),
    (check_channels, [1, 256], [0, -8, 64.0, True]),
    (check_odd_kernel_size, [1, 3, 7], [0, 2, 4, -1, 3.0, True]),
])
def test_accepts_and_refuses(check, good, bad):
    for value in good:
        assert check('Owner', 'arg', value) == value
    for value in bad:
        with pytest.raises(ValueError) as info:
            check('Owner', 'arg', value)
        # who, which argument, and the value it got
        assert str(info.value).startswith('Owner: arg must be ')
        assert str(info.value).endswith(f'got {value!r}')


def test_messages_say_what_is_expected():
    with pytest.raises(ValueError, match=r'FRRU: scale must be a positive '
                       r'integer, got 0$'):
        check_positive_int('FRRU', 'scale', 0)
    with pytest.raises(ValueError,
                       match=r'positive integer, got 0; use with_crp=False'):
        check_positive_int('CRP', 'num_stages', 0, hint='use with_crp=False')
    with pytest.raises(ValueError, match=r'number of channels, got -1'):
        check_channels('RefineNetHead', 'in_channels[3]', -1)
    with pytest.raises(ValueError, match=r'odd integer .*keeps the input '
                       r'size, got 4'):
        check_odd_kernel_size('RCU', 'kernel_size', 4)
    with pytest.raises(ValueError, match=r"order must be one of "
                       r"\('pool_conv', 'conv_pool'\), got 'pool'"):
        check_one_of('CRP', 'order', 'pool', ('pool_conv', 'conv_pool'))
    assert check_one_of('CRP', 'order', 'conv_pool',
                        ['pool_conv', 'conv_pool']) == 'conv_pool'
