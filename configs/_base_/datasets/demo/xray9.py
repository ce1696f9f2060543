# Demo miniature of xray9.py: the nine synthetic datasets under data/demo/
# (python tools/misc/generate_demo_data.py --out data/demo, then
# tools/dataset_converters/make_splits.py --data-root data/demo).
_base_ = ['../xray9.py']

data_root = 'data/demo/'

train_dataloader = dict(
    batch_size=2, num_workers=2, dataset=dict(data_root=data_root))
