"""Training machinery shared by fine-tuning, distillation pretraining, search and Agora."""
from .log import JsonlLog, plot_curves, read_jsonl  # noqa: F401
from .optim import (LinearSchedule, clip_global_norm, global_grad_norm,  # noqa: F401
                    global_grad_norm_nd, make_trainer, zero_grad)
from .state import (load_training_state, save_training_state, seed_everything,  # noqa: F401
                    seed_step)
