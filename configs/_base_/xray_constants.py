# The paper's pre-processing constants, defined once (MUSCLE Sec. 2.1).
# Configs read them as {{_base_.xray_mean}} etc.

# "Z-score method with the mean of 122.786 and a standard deviation of 18.390"
# on the 0-255 grey scale; one grey channel is replicated to the 3 channels
# the ResNet backbones expect.
xray_mean = [122.786, 122.786, 122.786]
xray_std = [18.390, 18.390, 18.390]

# "re-sizes all images into a 800x500 resolution". mmcv's Resize takes
# (width, height); we read the paper as width 800 x height 500.
xray_scale = (800, 500)
