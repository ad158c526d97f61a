package jdiffusion.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import org.junit.jupiter.api.Test;

/** T5 tokenizer properties beyond the golden prompts: normalisation per grapheme, lengths, special tokens. */
class T5TokenizerTest {
    private final T5Tokenizer tok = T5Tokenizer.get();

    @Test
    void vocabularyShape() {
        assertEquals(32100, tok.vocabSize());
        assertEquals("<pad>", tok.piece(T5Tokenizer.PAD));
        assertEquals("</s>", tok.piece(T5Tokenizer.EOS));
        assertEquals("<unk>", tok.piece(T5Tokenizer.UNK));
        assertArrayEquals(new int[] {3, 9, 1202, 13, 3, 9, 1712}, tok.encode("a photo of a cat"));
    }

    @Test
    void decomposedAccentsNormaliseAsOneGrapheme() {
        // e + combining acute is one grapheme the charsmap maps to the composed letter
        assertArrayEquals(tok.encode("caf\u00e9"), tok.encode("cafe\u0301"));
        // full-width letters and ligatures fold to ASCII (NFKC)
        assertArrayEquals(tok.encode("fine ABC"), tok.encode("\ufb01ne \uff21\uff22\uff23"));
        // whitespace runs, tabs and newlines collapse; trailing whitespace goes
        assertArrayEquals(tok.encode("a b c"), tok.encode("  a \t b\n\nc   "));
    }

    @Test
    void lengths() {
        assertArrayEquals(new int[] {1, 0, 0, 0}, tok.encodePadded("", 4));
        int[] raw = tok.encode("a photo of a cat");
        int[] cut = tok.encodePadded("a photo of a cat", 4);
        assertArrayEquals(new int[] {raw[0], raw[1], raw[2], T5Tokenizer.EOS}, cut, "keeps n - 1 tokens and the end token");
        assertEquals(77, tok.encodeMinLength("a photo of a cat", 77).length);
        String longText = "word ".repeat(200);
        assertEquals(tok.encode(longText).length + 1, tok.encodeMinLength(longText, 77).length, "never truncated");
        assertThrows(IllegalArgumentException.class, () -> tok.encodePadded("x", 0));
    }

    @Test
    void specialTokensAreSplitOffFirst() {
        assertEquals(List.of("<extra_id_0>", "\u2581cat", "</s>"), tok.tokens("<extra_id_0> cat</s>"));
        assertArrayEquals(new int[] {32099, 1712, 1}, tok.encode("<extra_id_0> cat</s>"));
        // a special token's text inside a word is still the special token
        assertEquals(List.of("\u2581", "a", "<unk>", "\u2581", "b"), tok.tokens("a<unk> b"));
    }
}
