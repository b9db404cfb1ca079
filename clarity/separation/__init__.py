"""Music source separation for CAD2 Task 2: stereo Conv-TasNet, checkpoints, inference, training."""
