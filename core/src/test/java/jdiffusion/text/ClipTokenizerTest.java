package jdiffusion.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** Chunking, padding and special-token behaviour, checked against hand-built rows. */
class ClipTokenizerTest {
    private final ClipTokenizer clipL = ClipTokenizer.clipL();
    private final ClipTokenizer openClip = ClipTokenizer.openClip();

    @Test
    void sanityCheckFromVocabReadme() {
        assertArrayEquals(new int[] {320, 1125, 539, 320, 2368}, clipL.encode("a photo of a cat"));
    }

    @Test
    void emptyPromptIsStartEndAndPadding() {
        int[][] chunks = clipL.encodeChunks("");
        assertEquals(1, chunks.length);
        int[] expected = new int[77];
        Arrays.fill(expected, ClipTokenizer.EOS);
        expected[0] = ClipTokenizer.BOS;
        assertArrayEquals(expected, chunks[0]);

        int[] bang = openClip.encodeChunks("")[0];
        assertEquals(ClipTokenizer.BOS, bang[0]);
        assertEquals(ClipTokenizer.EOS, bang[1]);
        for (int j = 2; j < 77; j++) {
            assertEquals(0, bang[j]);
        }
    }

    @Test
    void longPromptSplitsIntoChunksOf75() {
        String prompt = "a photo of a cat, ".repeat(30); // 6 tokens per repetition -> 180 tokens
        int[] raw = clipL.encode(prompt);
        assertEquals(180, raw.length);
        int[][] chunks = openClip.encodeChunks(prompt);
        assertEquals(3, chunks.length);
        for (int c = 0; c < 3; c++) {
            int n = Math.min(75, raw.length - 75 * c);
            assertEquals(ClipTokenizer.BOS, chunks[c][0]);
            assertArrayEquals(Arrays.copyOfRange(raw, 75 * c, 75 * c + n), Arrays.copyOfRange(chunks[c], 1, 1 + n));
            assertEquals(ClipTokenizer.EOS, chunks[c][n + 1]);
            for (int j = n + 2; j < 77; j++) {
                assertEquals(0, chunks[c][j]);
            }
        }
        // exactly 75 tokens stays one chunk
        String seventyFive = "cat ".repeat(75);
        assertEquals(1, clipL.encodeChunks(seventyFive).length);
        assertEquals(2, clipL.encodeChunks(seventyFive + "cat").length);
    }

    @Test
    void paddedRowTruncatesAt75() {
        int[] row = clipL.encodePadded("cat ".repeat(100));
        assertEquals(77, row.length);
        assertEquals(ClipTokenizer.EOS, row[76]);
        assertEquals(2368, row[75]);
    }

    @Test
    void specialTokenTextMapsToSpecialIds() {
        assertArrayEquals(new int[] {ClipTokenizer.BOS, 3306, ClipTokenizer.EOS, 1002},
                clipL.encode("<|startoftext|>hello<|endoftext|> world"));
        // the slow tokenizer lower-cases first, then its BPE cache maps the special string to itself
        assertArrayEquals(new int[] {3306, ClipTokenizer.EOS}, clipL.encode("hello <|EndOfText|>"));
    }

    @Test
    void bangIsOrdinaryForComfyButPadForDiffusersTokenizer2() {
        assertArrayEquals(new int[] {1002, 256}, openClip.encode("world!"));
        assertArrayEquals(new int[] {1002, 0}, ClipTokenizer.diffusers(0).encode("world!"));
        assertArrayEquals(new int[] {1002, 256}, ClipTokenizer.diffusers(ClipTokenizer.EOS).encode("world!"));
    }

    @Test
    void controlCharactersDroppedAndWhitespaceCollapsed() {
        assertArrayEquals(clipL.encode("a photo of a cat"), clipL.encode("\u0000a\u200b  photo\u3000of\r\na\u0007 cat "));
    }
}
