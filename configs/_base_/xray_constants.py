# The paper's pre-processing constants, defined once (MUSCLE Sec. 2.1).
# Dataset configs inherit them and read {{_base_.xray_mean}} etc. Task-model
# configs (./models/tasks/) read them with Config.fromfile instead of
# inheriting, so that a config can inherit a task model and a dataset config
# side by side (two bases may not define the same key); names starting with
# "__" do not become config keys.

# "Z-score method with the mean of 122.786 and a standard deviation of 18.390"
# on the 0-255 grey scale; one grey channel is replicated to the 3 channels
# the ResNet backbones expect.
xray_mean = [122.786, 122.786, 122.786]
xray_std = [18.390, 18.390, 18.390]

# "re-sizes all images into a 800x500 resolution". mmcv's Resize takes
# (width, height); we read the paper as width 800 x height 500.
xray_scale = (800, 500)

# "Kaiming's initialization [24] to setup the convolution layers" (Sec. 2.1),
# also the Scratch baseline of Sec. 3: every conv He-normal (fan_out, ReLU),
# BN weight 1 and bias 0. Used as a backbone's init_cfg.
kaiming_init = [
    dict(
        type='Kaiming',
        layer='Conv2d',
        mode='fan_out',
        nonlinearity='relu',
        distribution='normal'),
    dict(type='Constant', val=1, bias=0, layer=['_BatchNorm', 'GroupNorm'])
]
