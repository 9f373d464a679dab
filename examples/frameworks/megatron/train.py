"""Megatron-Core: a small GPT with tensor, pipeline, sequence and data parallelism, its
distributed optimizer and MoE layers optional, trained with Megatron's own pieces
(``parallel_state``, ``GPTModel`` on the local layer spec, ``DistributedDataParallel``,
``get_megatron_optimizer``, ``get_forward_backward_func``), after Megatron-Core's
``run_simple_mcore_train_loop.py``. No Transformer Engine or apex needed.

Real: ``torchrun --nproc-per-node 4 train.py --tp 2``. Simulated, unchanged:
``phantora run --nproc-per-node 4 examples/frameworks/megatron/train.py --tp 2``.
"""

from __future__ import annotations

import argparse
import os
from functools import partial

import torch
from megatron.core import parallel_state, tensor_parallel
from megatron.core.distributed import (
    DistributedDataParallel,
    DistributedDataParallelConfig,
    finalize_model_grads,
)
from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec
from megatron.core.models.gpt.gpt_model import GPTModel
from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer
from megatron.core.pipeline_parallel import get_forward_backward_func
from megatron.core.transformer.transformer_config import TransformerConfig


def build_model(args: argparse.Namespace) -> GPTModel:
    config = TransformerConfig(
        num_layers=args.layers, hidden_size=args.hidden, num_attention_heads=args.heads,
        ffn_hidden_size=4 * args.hidden, use_cpu_initialization=True, pipeline_dtype=torch.float32,
        tensor_model_parallel_size=args.tp, pipeline_model_parallel_size=args.pp,
        sequence_parallel=args.sp, num_moe_experts=args.experts or None,
        moe_router_topk=2, moe_token_dispatcher_type="alltoall",
        expert_model_parallel_size=args.ep, moe_aux_loss_coeff=0.0,
        add_bias_linear=False, gradient_accumulation_fusion=False, bias_dropout_fusion=False,
        apply_rope_fusion=False, masked_softmax_fusion=False, persist_layer_norm=False,
    )
    return GPTModel(
        config=config, transformer_layer_spec=get_gpt_layer_local_spec(num_experts=args.experts or None),
        vocab_size=args.vocab, max_sequence_length=args.seq_len,
        pre_process=parallel_state.is_pipeline_first_stage(), post_process=parallel_state.is_pipeline_last_stage(),
    )


def batches(args: argparse.Namespace):
    while True:
        tokens = torch.randint(0, args.vocab, (args.micro_batch, args.seq_len), device="cuda")
        yield {
            "tokens": tokens,
            "labels": torch.roll(tokens, -1, 1),
            "position_ids": torch.arange(args.seq_len, device="cuda").expand(args.micro_batch, -1),
            "attention_mask": torch.ones(args.micro_batch, 1, args.seq_len, args.seq_len, dtype=torch.bool,
                                         device="cuda").tril_().logical_not_(),
            "loss_mask": torch.ones(args.micro_batch, args.seq_len, device="cuda"),
        }


def loss_func(loss_mask: torch.Tensor, output: torch.Tensor):
    loss = (output.float().view(-1) * loss_mask.view(-1)).sum() / loss_mask.sum()
    return loss, {"lm loss": loss.detach()}


def forward_step(data_iterator, model: GPTModel):
    b = next(data_iterator)
    out = model(b["tokens"], b["position_ids"], b["attention_mask"], labels=b["labels"])
    return out, partial(loss_func, b["loss_mask"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--pp", type=int, default=1)
    ap.add_argument("--sp", action="store_true", help="sequence parallelism (with --tp > 1)")
    ap.add_argument("--ep", type=int, default=1)
    ap.add_argument("--experts", type=int, default=0, help="MoE experts per layer (0: dense)")
    ap.add_argument("--distributed-optimizer", action="store_true")
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--micro-batch", type=int, default=2)
    ap.add_argument("--micro-batches", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    args = ap.parse_args()

    torch.distributed.init_process_group("nccl")
    torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    parallel_state.initialize_model_parallel(args.tp, args.pp, expert_model_parallel_size=args.ep)
    tensor_parallel.model_parallel_cuda_manual_seed(1234)

    model = build_model(args).cuda()
    ddp_config = DistributedDataParallelConfig(use_distributed_optimizer=args.distributed_optimizer,
                                               overlap_grad_reduce=False, grad_reduce_in_fp32=True)
    model = DistributedDataParallel(config=model.config, ddp_config=ddp_config, module=model)
    model.config.finalize_model_grads_func = finalize_model_grads  # as megatron.training sets it: DP grad sync
    optimizer = get_megatron_optimizer(
        OptimizerConfig(optimizer="adam", lr=1e-4, use_distributed_optimizer=args.distributed_optimizer,
                        clip_grad=1.0), [model])
    forward_backward = get_forward_backward_func()
    data = batches(args)
    for step in range(args.steps):
        model.zero_grad_buffer()
        optimizer.zero_grad()
        losses = forward_backward(forward_step_func=forward_step, data_iterator=data, model=model,
                                  num_microbatches=args.micro_batches, seq_length=args.seq_len,
                                  micro_batch_size=args.micro_batch, forward_only=False)
        ok, grad_norm, _ = optimizer.step()
        if torch.distributed.get_rank() == 0:
            print(f"step {step}: update {'ok' if ok else 'skipped'}, grad norm {grad_norm}, {len(losses)} losses")
    parallel_state.destroy_model_parallel()
    torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
