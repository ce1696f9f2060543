# tbx_faster-rcnn_r18_fpn.py at the demo scale (128x80 px, batch 2, CPU):
# the demo's TB lesions are 4-20 px, below the stock 32 px smallest anchor, so
# anchors start at 8 px (scales=[2]); and 100 proposals / 64 sampled RoIs
# instead of 1000 / 512, since the RoI head dominated the CPU step time
# (7.9 s -> 0.9 s per iteration).
_base_ = ['../tbx_faster-rcnn_r18_fpn.py']

model = dict(
    rpn_head=dict(anchor_generator=dict(scales=[2])),
    train_cfg=dict(
        rpn_proposal=dict(nms_pre=200, max_per_img=100),
        rcnn=dict(sampler=dict(num=64))),
    test_cfg=dict(rpn=dict(nms_pre=200, max_per_img=100)))
