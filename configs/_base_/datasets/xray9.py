# MD-MoCo pre-training set (MUSCLE Sec. 2.1, Table 1): the union of the
# training sets of the nine public X-ray datasets, 169,257 images, labels
# unused. Each reader takes its dataset folder as distributed, under
# data_root; the splits of the four task datasets are written once by
#   python tools/dataset_converters/make_splits.py --data-root data
#
# The algorithm config adds the pipeline (LoadXrayImage, Resize to
# xray_scale of ../xray_constants.py, its views), e.g.
#   train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# The paper pools all images uniformly (DefaultSampler). To mix sources in
# chosen proportions instead, give every source a `weight` (its share of
# each epoch) and use sampler=dict(type='MultiSourceWeightedSampler').
data_root = 'data/'

xray9_sources = [
    # MD-MoCo only
    dict(
        type='NIHChestXray14Dataset',
        data_root='NIH-ChestXray14',
        split='train'),  # 112,120
    dict(
        type='ShenzhenCXRDataset',
        data_root='ChinaSet_AllFiles',
        split='train'),  # 661
    dict(
        type='MontgomeryCXRDataset', data_root='MontgomerySet',
        split='train'),  # 138
    dict(type='IndianaCXRDataset', data_root='IndianaCXR',
         split='train'),  # 7,470
    dict(type='RSNABoneAgeDataset', data_root='RSNA-BoneAge',
         split='train'),  # 10,811
    # also the tasks of stages 2 and 3: their training splits only
    dict(
        type='KermanyPneumoniaDataset', data_root='chest_xray',
        split='train'),  # 4,686
    dict(type='MURADataset', data_root='MURA-v1.1', split='train'),  # 32,013
    dict(
        type='ChestXrayMasksDataset',
        data_root='Lung Segmentation',
        split='train'),  # 718
    dict(type='TBX11KDataset', data_root='TBX11K', split='train'),  # 640
]

# batch size and workers are not given in the paper; MoCo's queue needs
# full batches (queue_len % global batch == 0), hence drop_last
train_dataloader = dict(
    batch_size=32,
    num_workers=8,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='MultiSourceXrayDataset',
        data_root=data_root,
        sources=xray9_sources))
