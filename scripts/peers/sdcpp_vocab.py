#!/usr/bin/env python3
"""Recreates stable-diffusion.cpp's large tokenizer headers that a GitHub snapshot may lack (git LFS-sized blobs).

usage: sdcpp_vocab.py SDCPP_SOURCE_DIR T5_TOKENIZER_JSON

t5.hpp is written from a real T5 v1.1 tokenizer.json (ours: ../shared/vocab/t5/tokenizer.json, the same
Hugging Face file sd.cpp embeds); every other missing header (Qwen, Mistral, Gemma, GPT-OSS, UMT5 vocabularies,
used only by model families we do not benchmark) becomes a one-byte placeholder so the library links.
Headers already present are left alone.
"""
import os
import sys

# header -> the array names vocab.cpp reads from it
HEADERS = {
    "t5.hpp": ["t5_tokenizer_json_str"],
    "umt5.hpp": ["umt5_tokenizer_json_str"],
    "qwen_merges.hpp": ["qwen2_merges_utf8_c_str"],
    "mistral_merges.hpp": ["mistral_merges_utf8_c_str"],
    "mistral_vocab.hpp": ["mistral_vocab_json_utf8_c_str"],
    "gemma_merges.hpp": ["gemma_merges_utf8_c_str"],
    "gemma_vocab.hpp": ["gemma_vocab_json_utf8_c_str"],
    "gemma2_merges.hpp": ["gemma2_merges_utf8_c_str"],
    "gemma2_vocab.hpp": ["gemma2_vocab_json_utf8_c_str"],
    "gpt_oss_merges.hpp": ["gpt_oss_merges_utf8_c_str"],
    "gpt_oss_vocab.hpp": ["gpt_oss_vocab_json_utf8_c_str"],
}


def array(name, data):
    body = ",".join("0x%02x" % b for b in data)
    lines = [body[i:i + 120] for i in range(0, len(body), 120)]
    return "static const unsigned char %s[] = {\n%s\n};\n" % (name, "\n".join(lines))


def main():
    src, t5_json = sys.argv[1], sys.argv[2]
    vocab = os.path.join(src, "src", "tokenizers", "vocab")
    for header, names in HEADERS.items():
        path = os.path.join(vocab, header)
        if os.path.exists(path):
            continue
        if header == "t5.hpp":
            with open(t5_json, "rb") as f:
                data = f.read()
        else:
            data = b" "
        with open(path, "w") as f:
            for n in names:
                f.write(array(n, data))
        print("wrote", path, len(data), "bytes")


if __name__ == "__main__":
    main()
