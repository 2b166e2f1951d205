"""Instruction-like sentences in documents: text that speaks to an AI model rather than to a reader.

Used by the LLM answerer (such sentences are removed before the prompt is built, and numbers only
they contain count as unsupported) and by the extractive answerers (such sentences are never quoted).
Matching runs on a normalized form so that spacing, invisible characters (every Unicode format
character, variation selectors, tags, the soft hyphen), full-width letters, Cyrillic or Greek look-alike
letters and Traditional characters do not hide a phrase; detection is by structure (an order aimed at the model,
a role marker, an address to an AI), not by a list of whole phrases.
"""

from __future__ import annotations

import re
import unicodedata

from rag import text as textmod

# Characters that render as nothing but are not category Cf (which is removed as a whole, U+00AD, U+180E,
# U+2063, U+E0020 and bidirectional controls included): the combining grapheme joiner, variation
# selectors, Mongolian free variation selectors, Hangul fillers and Khmer inherent vowels.
_INVISIBLE = re.compile("[\u034f\ufe00-\ufe0f\U000e0100-\U000e01ef\u180b-\u180d\u180f"
                        "\u115f\u1160\u3164\uffa0\u17b4\u17b5]")
# Cyrillic and Greek letters drawn like Latin ones ("іgnore" with a Cyrillic і); NFKC keeps them apart.
_CONFUSABLES = str.maketrans(
    "аеорсухіјѕԁԛԝһкмнтвАВЕКМНОРСТХУІЈЅαβεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧ",
    "aeopcyxijsdqwhkmhtbABEKMHOPCTXYIJSabeiknoptuxABEZHIKMNOPTYX",
)
_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# Whitespace between two CJK characters (or CJK and CJK punctuation) carries no meaning in Chinese.
_CJK_GAP = re.compile(rf"(?<=[{_CJK}\u3000-\u303f\uff00-\uffef])\s+(?=[{_CJK}\u3000-\u303f\uff00-\uffef])")

_ORDER_VERB = r"(?:忽略|忽视|无视|忘记|忘掉|不要理会|别理会|不用理会|不理会|不要理|不要管|别管|不要遵守|不要遵循|不必遵守)"
_ORDER_OBJECT = r"(?:指令|指示|规则|要求|提示|提示词|命令|设定|规定)"
_ABOVE = r"(?:以上|以前|之前|前面|上面|上述|先前|此前|所有|全部|一切)"
_PATTERNS = (
    # An order to drop what the model was told: verb, then (within a few characters) what it drops.
    rf"{_ORDER_VERB}[^。！？!?]{{0,12}}?{_ORDER_OBJECT}",
    rf"{_ORDER_VERB}掉?{_ABOVE}",
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.!?]{0,40}?\b(?:instructions?|rules?|prompts?|directions?|guidelines?|directives?)\b",
    r"\b(?:ignore|disregard|forget)\s+(?:all\s+|any\s+|everything\s+)?(?:the\s+)?(?:previous|above|prior|earlier|preceding)\b",
    # A role marker: the text pretends to be a turn of the conversation or a prompt section.
    r"(?:^|[，,；;。])\s*[\[【(<]?\s*(?:系统|系统提示|system|system prompt|assistant|助手|指令|新的指令|新指令|instructions?)\s*[\]】)>]?\s*:",
    r"[\[【<]\s*(?:系统|system|assistant|指令|instructions?)\s*[\]】>]",
    r"#{2,}\s*(?:instructions?|system|指令|系统)",
    # An address to an AI.
    r"(?:^|[，,；;。：:])\s*(?:现在)?你(?:现在)?(?:是|扮演|将扮演|必须|只能|应该)",
    r"你(?:现在)?(?:是|扮演)(?:一个|一名)?[^。！？!?]{0,10}?(?:ai|助手|模型|机器人|assistant|gpt)",
    r"作为(?:一个|一名)?(?:ai|人工智能|语言模型|大模型|大语言模型)(?:助手|模型)?(?=[，,：:。\s]|$)",
    r"作为(?:一个|一名)?(?:ai|人工智能)?(?:助手|语言模型)",
    r"\bas an? (?:ai|language model|assistant)\b",
    r"\byou are (?:now )?(?:an? |the )?(?:ai|assistant|chatbot|language model|chatgpt|gpt)\b",
    r"系统提示|system prompt",
)
_INSTRUCTION = re.compile("|".join(f"(?:{p})" for p in _PATTERNS), re.I)


def matching_form(sentence: str) -> str:
    """Return `sentence` as matched for instructions: NFKC, invisible characters and CJK spacing removed,
    look-alike letters folded to Latin, Simplified, lower case."""
    folded = unicodedata.normalize("NFKC", sentence)
    folded = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    folded = _INVISIBLE.sub("", folded).translate(_CONFUSABLES)
    folded = _CJK_GAP.sub("", folded)
    return textmod.to_simplified(folded).lower()


def is_instruction(sentence: str) -> bool:
    """Return True when `sentence` reads as an instruction to an AI model rather than as information."""
    return bool(_INSTRUCTION.search(matching_form(sentence)))
