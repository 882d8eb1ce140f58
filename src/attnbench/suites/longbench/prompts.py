"""LongBench's prompts and generation rules, as THUDM/LongBench `LongBench/pred.py` and `config/`
apply them.

* `PROMPTS` is `config/dataset2prompt.json` and `MAX_NEW_TOKENS` is `config/dataset2maxlen.json` (at
  2e00731), written here as data, typos included ("asconcisely" in narrativeqa): the published
  numbers were made with them.
* A prompt longer than `max_length` tokens (the model's window less room for the answer) keeps its
  first and last `int(max_length / 2)` tokens, decoded back to text and joined: pred.py's middle
  truncation, since instructions sit at both ends of every template. The count includes the
  tokenizer's special tokens, as there.
* Chat models get their chat wrapping after truncation, except on the few-shot and code datasets
  (`NO_CHAT_DATASETS`), where pred.py finds them better off without it. pred.py hard-codes one
  wrapping per model family it ships (`build_chat`); here the tokenizer's own chat template plays
  that part, one user turn with the generation prompt, tokenized without adding special tokens a
  second time.
* Decoding is greedy. samsum also stops at a newline and generates at least one token (pred.py's
  guard against a model that repeats "\nDialogue" forever).
* trec, triviaqa, samsum and lsht predictions are cut to their first line before scoring (eval.py).
"""

from __future__ import annotations

from typing import Any, Mapping

PROMPTS: dict[str, str] = {
    "narrativeqa": (
        "You are given a story, which can be either a novel or a movie script, and a question. "
        "Answer the question asconcisely as you can, using a single phrase if possible. Do not "
        "provide any explanation.\n\n"
        "Story: {context}\n\n"
        "Now, answer the question based on the story asconcisely as you can, using a single phrase "
        "if possible. Do not provide any explanation.\n\n"
        "Question: {input}\n\n"
        "Answer:"
    ),
    "qasper": (
        "You are given a scientific article and a question. Answer the question as concisely as you"
        " can, using a single phrase or sentence if possible. If the question cannot be answered"
        ' based on the information in the article, write "unanswerable". If the question is a'
        ' yes/no question, answer "yes", "no", or "unanswerable". Do not provide any'
        " explanation.\n\nArticle: {context}\n\n Answer the question based on the above article as"
        " concisely as you can, using a single phrase or sentence if possible. If the question"
        ' cannot be answered based on the information in the article, write "unanswerable". If the'
        ' question is a yes/no question, answer "yes", "no", or "unanswerable". Do not provide any'
        " explanation.\n\nQuestion: {input}\n\nAnswer:"
    ),
    "multifieldqa_en": (
        "Read the following text and answer briefly.\n\n"
        "{context}\n\n"
        "Now, answer the following question based on the above text, only give me the answer and "
        "do not output any other words.\n\n"
        "Question: {input}\n"
        "Answer:"
    ),
    "multifieldqa_zh": (
        "阅读以下文字并用中文简短回答：\n\n"
        "{context}\n\n"
        "现在请基于上面的文章回答下面的问题，只告诉我答案，不要输出任何其他字词。\n\n"
        "问题：{input}\n"
        "回答："
    ),
    "hotpotqa": (
        "Answer the question based on the given passages. Only give me the answer and do not "
        "output any other words.\n\n"
        "The following are given passages.\n"
        "{context}\n\n"
        "Answer the question based on the given passages. Only give me the answer and do not "
        "output any other words.\n\n"
        "Question: {input}\n"
        "Answer:"
    ),
    "2wikimqa": (
        "Answer the question based on the given passages. Only give me the answer and do not "
        "output any other words.\n\n"
        "The following are given passages.\n"
        "{context}\n\n"
        "Answer the question based on the given passages. Only give me the answer and do not "
        "output any other words.\n\n"
        "Question: {input}\n"
        "Answer:"
    ),
    "musique": (
        "Answer the question based on the given passages. Only give me the answer and do not "
        "output any other words.\n\n"
        "The following are given passages.\n"
        "{context}\n\n"
        "Answer the question based on the given passages. Only give me the answer and do not "
        "output any other words.\n\n"
        "Question: {input}\n"
        "Answer:"
    ),
    "dureader": (
        "请基于给定的文章回答下述问题。\n\n"
        "文章：{context}\n\n"
        "请基于上述文章回答下面的问题。\n\n"
        "问题：{input}\n"
        "回答："
    ),
    "gov_report": (
        "You are given a report by a government agency. Write a one-page summary of the report.\n\n"
        "Report:\n"
        "{context}\n\n"
        "Now, write a one-page summary of the report.\n\n"
        "Summary:"
    ),
    "qmsum": (
        "You are given a meeting transcript and a query containing a question or instruction. "
        "Answer the query in one or more sentences.\n\n"
        "Transcript:\n"
        "{context}\n\n"
        "Now, answer the query based on the above meeting transcript in one or more sentences.\n\n"
        "Query: {input}\n"
        "Answer:"
    ),
    "multi_news": (
        "You are given several news passages. Write a one-page summary of all news. \n\n"
        "News:\n"
        "{context}\n\n"
        "Now, write a one-page summary of all the news.\n\n"
        "Summary:"
    ),
    "vcsum": (
        "下面有一段会议记录，请你阅读后，写一段总结，总结会议的内容。\n"
        "会议记录：\n"
        "{context}\n\n"
        "会议总结："
    ),
    "trec": (
        "Please determine the type of the question below. Here are some examples of questions.\n\n"
        "{context}\n"
        "{input}"
    ),
    "triviaqa": (
        "Answer the question based on the given passage. Only give me the answer and do not output "
        "any other words. The following are some examples.\n\n"
        "{context}\n\n"
        "{input}"
    ),
    "samsum": (
        "Summarize the dialogue into a few short sentences. The following are some examples.\n\n"
        "{context}\n\n"
        "{input}"
    ),
    "lsht": "请判断给定新闻的类别，下面是一些例子。\n\n{context}\n{input}",
    "passage_count": (
        "There are some paragraphs below sourced from Wikipedia. Some of them may be duplicates."
        " Please carefully read these paragraphs and determine how many unique paragraphs there are"
        " after removing duplicates. In other words, how many non-repeating paragraphs are there in"
        " total?\n\n{context}\n\nPlease enter the final count of unique paragraphs after removing"
        " duplicates. The output format should only contain the number, such as 1, 2, 3, and so"
        " on.\n\nThe final answer is: "
    ),
    "passage_retrieval_en": (
        "Here are 30 paragraphs from Wikipedia, along with an abstract. Please determine which "
        "paragraph the abstract is from.\n\n"
        "{context}\n\n"
        "The following is an abstract.\n\n"
        "{input}\n\n"
        "Please enter the number of the paragraph that the abstract is from. The answer format "
        'must be like "Paragraph 1", "Paragraph 2", etc.\n\n'
        "The answer is: "
    ),
    "passage_retrieval_zh": (
        "以下是若干段落文字，以及其中一个段落的摘要。请确定给定的摘要出自哪一段。\n\n"
        "{context}\n\n"
        "下面是一个摘要\n\n"
        "{input}\n\n"
        '请输入摘要所属段落的编号。答案格式必须是"段落1"，"段落2"等格式\n\n'
        "答案是："
    ),
    "lcc": "Please complete the code given below. \n{context}Next line of code:\n",
    "repobench-p": "Please complete the code given below. \n{context}{input}Next line of code:\n",
}

MAX_NEW_TOKENS: dict[str, int] = {
    "narrativeqa": 128,
    "qasper": 128,
    "multifieldqa_en": 64,
    "multifieldqa_zh": 64,
    "hotpotqa": 32,
    "2wikimqa": 32,
    "musique": 32,
    "dureader": 128,
    "gov_report": 512,
    "qmsum": 512,
    "multi_news": 512,
    "vcsum": 512,
    "trec": 64,
    "triviaqa": 32,
    "samsum": 128,
    "lsht": 64,
    "passage_count": 32,
    "passage_retrieval_en": 32,
    "passage_retrieval_zh": 32,
    "lcc": 64,
    "repobench-p": 64,
}

NO_CHAT_DATASETS = ("trec", "triviaqa", "samsum", "lsht", "lcc", "repobench-p")
STOP_AT_NEWLINE_DATASETS = ("samsum",)
FIRST_LINE_DATASETS = ("trec", "triviaqa", "samsum", "lsht")


def build_prompt(dataset: str, row: Mapping[str, Any]) -> str:
    """The dataset's template filled with the row's context and input."""
    return PROMPTS[dataset].format(context=row["context"], input=row["input"])


def middle_truncate(tokenizer: Any, prompt: str, max_length: int) -> tuple[str, bool]:
    """The prompt, cut in the middle to its first and last `int(max_length / 2)` tokens when it has
    more than `max_length` (special tokens counted); and whether it was cut."""
    ids = tokenizer(prompt, truncation=False, verbose=False)["input_ids"]
    if len(ids) <= max_length:
        return prompt, False
    half = int(max_length / 2)
    head = tokenizer.decode(ids[:half], skip_special_tokens=True)
    tail = tokenizer.decode(ids[-half:], skip_special_tokens=True)
    return head + tail, True


def uses_chat_template(dataset: str, chat_template: bool) -> bool:
    return chat_template and dataset not in NO_CHAT_DATASETS


def prompt_ids(
    tokenizer: Any, dataset: str, row: Mapping[str, Any], max_length: int, chat_template: bool
) -> tuple[list[int], bool]:
    """The token ids the model reads for one row, and whether its prompt was truncated."""
    prompt, truncated = middle_truncate(tokenizer, build_prompt(dataset, row), max_length)
    if uses_chat_template(dataset, chat_template):
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        return (
            list(tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]),
            truncated,
        )
    return list(tokenizer(prompt, truncation=False, verbose=False)["input_ids"]), truncated


def postprocess(dataset: str, prediction: str) -> str:
    """eval.py's rule for the datasets whose answers are one line: leading newlines dropped, the
    first line kept."""
    if dataset in FIRST_LINE_DATASETS:
        return prediction.lstrip("\n").split("\n")[0]
    return prediction
