"""A ticket in a notebook, in three lines (README.md, "Python API"), after `make quickstart`:

python docs/api_example.py results/quickstart
"""

import sys

import torch

import lth

ticket = lth.find_ticket(sys.argv[1], variant="at+trt", level=3, seed=0)
logits = ticket.model(torch.zeros(1, 3, 32, 32))  # eval mode, pruned weights zero
print(f"{ticket.folder}: sparsity {100 * ticket.sparsity:.1f}%, test accuracy {ticket.test_acc_pct:.2f}%")
print(f"{len(ticket.mask)} masked tensors; logits {tuple(logits.shape)}; {len(ticket.metrics)} epochs in metrics")
