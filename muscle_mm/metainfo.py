# Copyright (c) muscle_mm contributors. All rights reserved.
"""The names of the MUSCLE study, defined once: tasks, initialisations and
the nine datasets of Table 1.

Every module that names a task, an initialisation or a dataset folder
imports it from here (the study, the report, the tables, the readers, the
demo generator). Standard library only, so the demo generator and the tools
import it without torch or the OpenMMLab stack.
"""
from typing import Dict

#: Downstream tasks of stage 3, in the paper's order (Sec. 3, Tables 2, 3).
TASKS = ('pneumonia', 'mura', 'lung', 'tbx')
#: Classification tasks: Table 2 and the ROC curves of Fig. 2.
CLS_TASKS = ('pneumonia', 'mura')
#: Table 3: lung segmentation and TB detection.
TABLE3_TASKS = ('lung', 'tbx')
#: Printed name of each task.
TASK_TITLES = dict(pneumonia='Pneumonia', mura='MURA', lung='Lung', tbx='TBX')
#: The Table 1 dataset each task is fine-tuned and tested on.
TASK_DATASETS = dict(
    pneumonia='pneumonia', mura='mura', lung='lung_masks', tbx='tbx11k')

#: Initialisations compared in Tables 2 and 3, in the paper's row order.
#: ``muscle_minus`` is MUSCLE-- (Sec. 3: stage 2 without reshuffling, cyclic
#: LR and L2-SP); it is the only spelling of the key.
INITS = ('scratch', 'imagenet', 'mdmoco', 'muscle_minus', 'muscle')
#: Printed name of each initialisation (tables, legends, messages).
INIT_NAMES = dict(
    scratch='Scratch',
    imagenet='ImageNet',
    mdmoco='MD-MoCo',
    muscle_minus='MUSCLE--',
    muscle='MUSCLE')
#: Initialisations that a stage of the study makes (stage 1, then stage 2).
STAGE_BACKBONES = ('mdmoco', 'muscle_minus', 'muscle')
#: The config of the stage that makes each of them
#: (``configs/muscle/{name}_r18.py``), in the order the study runs them.
STAGE_CONFIGS = dict(mdmoco='mdmoco', muscle='cl', muscle_minus='muscle_minus')

#: Which splits the task datasets are read with: the paper's re-splits
#: (Table 1; the default, for Tables 2 and 3 as published) or those the
#: literature reports on (each release's own train/test, val carved from
#: train; ``make_splits.py --protocol official``).
PROTOCOLS = ('paper', 'official')
#: Environment variable: the readers' default protocol (the study sets it
#: for every run it starts).
PROTOCOL_ENV = 'MUSCLE_PROTOCOL'

# MUSCLE Table 1: folder as distributed, reader type and the paper's counts.
# The order is the demo generator's too (it seeds each dataset by position).
TABLE1: Dict[str, dict] = {
    'nih':
    dict(
        folder='NIH-ChestXray14',
        type='NIHChestXray14Dataset',
        counts=dict(train=112120)),
    'shenzhen':
    dict(
        folder='ChinaSet_AllFiles',
        type='ShenzhenCXRDataset',
        counts=dict(train=661)),
    'montgomery':
    dict(
        folder='MontgomerySet',
        type='MontgomeryCXRDataset',
        counts=dict(train=138)),
    'indiana':
    dict(
        folder='IndianaCXR', type='IndianaCXRDataset',
        counts=dict(train=7470)),
    'rsna_boneage':
    dict(
        folder='RSNA-BoneAge',
        type='RSNABoneAgeDataset',
        counts=dict(train=10811)),
    'pneumonia':
    dict(
        folder='chest_xray',
        type='KermanyPneumoniaDataset',
        counts=dict(train=4686, val=585, test=585)),
    'mura':
    dict(
        folder='MURA-v1.1',
        type='MURADataset',
        counts=dict(train=32013, val=3997, test=3995)),
    'lung_masks':
    dict(
        folder='Lung Segmentation',
        type='ChestXrayMasksDataset',
        counts=dict(train=718, val=89, test=89)),
    'tbx11k':
    dict(
        folder='TBX11K',
        type='TBX11KDataset',
        counts=dict(train=640, val=80, test=80)),
}
#: Dataset key -> folder name as the release unpacks.
DATASET_FOLDERS: Dict[str, str] = {
    key: info['folder']
    for key, info in TABLE1.items()
}

#: Where each dataset comes from and its terms, as docs/datasets.md states
#: them (the model card of an export lists them). Check the source before
#: redistributing anything.
DATASET_TERMS: Dict[str, dict] = {
    'nih':
    dict(
        name='NIH ChestX-ray14',
        licence='free use with the NIH Clinical Center acknowledgement and '
        'citation; see the dataset\'s terms',
        url='https://nihcc.app.box.com/v/ChestXray-NIHCC'),
    'shenzhen':
    dict(
        name='Shenzhen (China Set)',
        licence='public, cite Jaeger et al. 2014; see the dataset\'s terms',
        url='https://lhncbc.nlm.nih.gov'),
    'montgomery':
    dict(
        name='Montgomery County',
        licence='public, cite Jaeger et al. 2014; see the dataset\'s terms',
        url='https://lhncbc.nlm.nih.gov'),
    'indiana':
    dict(
        name='Indiana (Open-i)',
        licence='see Open-i\'s terms (research use, cite Demner-Fushman et '
        'al. 2016)',
        url='https://openi.nlm.nih.gov'),
    'rsna_boneage':
    dict(
        name='RSNA Pediatric Bone Age',
        licence='RSNA terms, non-commercial research',
        url='https://www.kaggle.com/datasets/kmader/rsna-bone-age'),
    'pneumonia':
    dict(
        name='Pneumonia (Kermany)',
        licence='CC BY 4.0',
        url='https://data.mendeley.com/datasets/rscbjbr9sj'),
    'mura':
    dict(
        name='MURA v1.1',
        licence='Stanford research use agreement (non-commercial)',
        url='https://stanfordmlgroup.github.io/competitions/mura/'),
    'lung_masks':
    dict(
        name='Chest X-ray Masks and Labels',
        licence='as the NLM sets; see the dataset\'s terms',
        url='https://www.kaggle.com/datasets/nikhilpandey360/'
        'chest-xray-masks-and-labels'),
    'tbx11k':
    dict(
        name='TBX11K',
        licence='non-commercial research; see the project page',
        url='https://mmcheng.net/tb/'),
}

__all__ = [
    'TASKS', 'CLS_TASKS', 'TABLE3_TASKS', 'TASK_TITLES', 'TASK_DATASETS',
    'INITS', 'INIT_NAMES', 'STAGE_BACKBONES', 'STAGE_CONFIGS', 'TABLE1',
    'DATASET_FOLDERS', 'DATASET_TERMS'
]
