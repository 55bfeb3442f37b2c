"""The engine: catalogue loading and expansion, jobs (train, evaluate), judging,
tracking and reports. It never names a paper: papers are data in catalogue/."""
