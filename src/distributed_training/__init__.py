"""The template's distributed training: what a training script needs to run on one process, on the
local GPUs or over N workers (`invoke train --workers N`, the Kubernetes Job, Vertex AI, Ray).

    import distributed_training
    training = distributed_training.start()      # see training.py for the whole loop

- cluster.py: where this process stands, from `TF_CONFIG` or an Indexed Job pod's variables.
- strategy.py: the tf.distribute strategy that follows.
- training.py: `start()`, then `Training.fit` (a custom loop that works where Keras 3's model.fit
  does not: under MultiWorkerMirroredStrategy) and `Training.save` (the chief's copy is kept).

It belongs to the template, not to the example: keep it when you replace `src/app`. Importing it
does not import TensorFlow (the functions that need it do), so a bad environment is one line.
"""

from distributed_training.cluster import (
    Cluster,
    ClusterError,
    from_environment,
    pod_tf_config,
    wait_for_chief,
)
from distributed_training.strategy import create_strategy, strategy_name
from distributed_training.training import Training, TrainingError, start

__all__ = [
    "Cluster",
    "ClusterError",
    "Training",
    "TrainingError",
    "create_strategy",
    "from_environment",
    "pod_tf_config",
    "start",
    "strategy_name",
    "wait_for_chief",
]
