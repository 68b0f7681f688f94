"""Word helpers."""


def count_words(text):
    return len(text.split())


def slugify(title):
    return "-".join(title.split())
