"""Hear a Hugging Face ``Trainer``: loss, a tone per layer's gradient norm, spoken evaluations.

    python examples/hf_trainer.py [OUT_DIR]

A tiny GPT-2 (random weights, built from its config: nothing is downloaded) learns a
repeating token pattern for two epochs, with the Trainer's defaults plus gradient
accumulation and bf16 on the CPU.  Each epoch ends with an evaluation, spoken
("epoch 1, loss 3.9, evaluation loss 3.8") when espeak-ng is installed.
"""

import sys

import torch
from transformers import GPT2Config, GPT2LMHeadModel, Trainer, TrainingArguments

from auralize.transformers import SonifyCallback

out_dir = sys.argv[1] if len(sys.argv) > 1 else "runs/examples/hf_trainer"


class Pattern(torch.utils.data.Dataset):
    """Sequences of 16 tokens counting up from a random start: easy to learn, fast to see."""

    def __init__(self, n, seed):
        starts = torch.randint(0, 64, (n, 1), generator=torch.Generator().manual_seed(seed))
        self.ids = (starts + torch.arange(16)) % 64

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=64, n_positions=16,
                                   bos_token_id=0, eos_token_id=0))
args = TrainingArguments(output_dir="runs/examples/hf_trainer_checkpoints", num_train_epochs=2,
                         per_device_train_batch_size=8, gradient_accumulation_steps=2,
                         learning_rate=3e-3, bf16=True, use_cpu=True, logging_steps=1,
                         eval_strategy="epoch", save_strategy="no", report_to=[], disable_tqdm=True)
sound = SonifyCallback(out_dir, mappings=["loss", "gradients", "alarm", "speech"])
trainer = Trainer(model=model, args=args, train_dataset=Pattern(128, 1),
                  eval_dataset=Pattern(32, 2), callbacks=[sound])
trainer.train()
print(f"wrote {sound.result.wav_path}")
