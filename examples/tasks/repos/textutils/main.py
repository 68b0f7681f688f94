import sys

from textutils.words import count_words, slugify

if __name__ == "__main__":
    text = " ".join(sys.argv[1:])
    print(count_words(text), slugify(text))
