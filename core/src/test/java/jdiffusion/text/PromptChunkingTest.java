package jdiffusion.text;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import jdiffusion.text.ClipTokenizer.Grouping;
import org.junit.jupiter.api.Test;

/**
 * ComfyUI's tokenize_with_weights chunking. Expected rows are assembled here from the plain tokenizer's ids of each
 * piece ("cat" is one token, 2368), so a wrong boundary rule shows up as a shifted or missing id.
 */
class PromptChunkingTest {
    private static final int CAT = 2368;
    private final ClipTokenizer clipL = ClipTokenizer.clipL();
    private final ClipTokenizer openClip = ClipTokenizer.openClip();

    /** n plain one-token words, ending in a space. */
    private static String cats(int n) {
        return "cat ".repeat(n);
    }

    /** A row: start, the ids, end, then padding to 77. */
    private static int[] row(int pad, int[]... parts) {
        int[] r = new int[77];
        Arrays.fill(r, pad);
        r[0] = ClipTokenizer.BOS;
        int at = 1;
        for (int[] p : parts) {
            System.arraycopy(p, 0, r, at, p.length);
            at += p.length;
        }
        r[at] = ClipTokenizer.EOS;
        return r;
    }

    private static int[] repeat(int id, int n) {
        int[] a = new int[n];
        Arrays.fill(a, id);
        return a;
    }

    /** Weights of a row: 1 everywhere except [from, from + count) = w. */
    private static double[] weights(int from, int count, double w) {
        double[] r = new double[77];
        Arrays.fill(r, 1.0);
        Arrays.fill(r, from, from + count, w);
        return r;
    }

    @Test
    void emptyPromptIsOneChunkOfStartEndPadding() {
        WeightedChunks c = clipL.encodeWeighted("");
        assertArrayEquals(clipL.encodeChunks(""), c.ids());
        assertArrayEquals(new double[][] {weights(0, 0, 1)}, c.weights());
        assertFalse(c.weighted());
        assertArrayEquals(openClip.encodeChunks(""), openClip.encodeWeighted("").ids());
        // a prompt of nothing but syntax is empty too
        assertArrayEquals(clipL.encodeChunks(""), clipL.encodeWeighted("() ( )  ").ids());
    }

    @Test
    void plainPromptsChunkExactlyAsThePlainPath() {
        for (String prompt : List.of("a photo of a cat", cats(75), cats(76), "a photo of a cat, ".repeat(30),
                "an astronaut riding a horse on mars, highly detailed, 8k, trending on artstation, ".repeat(5))) {
            WeightedChunks c = clipL.encodeWeighted(prompt);
            assertArrayEquals(clipL.encodeChunks(prompt), c.ids(), prompt);
            assertFalse(c.weighted(), prompt);
            assertArrayEquals(openClip.encodeChunks(prompt), openClip.encodeWeighted(prompt).ids(), prompt);
        }
    }

    @Test
    void shortGroupStraddlingToken75MovesWhole() {
        int[] hat = clipL.encode("red big hat");
        assertEquals(3, hat.length);
        // 73 + 3 = 76 > 75: the whole weighted group starts the next chunk, the first is ended after 73
        WeightedChunks c = clipL.encodeWeighted(cats(73) + "(red big hat:1.2)");
        assertArrayEquals(new int[][] {row(ClipTokenizer.EOS, repeat(CAT, 73)), row(ClipTokenizer.EOS, hat)}, c.ids());
        assertArrayEquals(new double[][] {weights(0, 0, 1), weights(1, 3, 1.2)}, c.weights());
        assertTrue(c.weighted());
        // 72 + 3 = 75 fits exactly
        c = clipL.encodeWeighted(cats(72) + "(red big hat:1.2)");
        assertArrayEquals(new int[][] {row(ClipTokenizer.EOS, repeat(CAT, 72), hat)}, c.ids());
        assertArrayEquals(new double[][] {weights(73, 3, 1.2)}, c.weights());
        // the same with the OpenCLIP pad
        assertArrayEquals(new int[][] {row(0, repeat(CAT, 73)), row(0, hat)},
                openClip.encodeWeighted(cats(73) + "(red big hat:1.2)").ids());
    }

    @Test
    void longGroupIsSplitAtTheChunkBoundary() {
        // ten one-token words, weighted: 70 + 10 > 75, and 10 >= 8, so 5 stay and 5 move
        WeightedChunks c = clipL.encodeWeighted(cats(70) + "(" + cats(10) + ":0.8)");
        assertArrayEquals(new int[][] {row(ClipTokenizer.EOS, repeat(CAT, 75)), row(ClipTokenizer.EOS, repeat(CAT, 5))}, c.ids());
        assertArrayEquals(new double[][] {weights(71, 5, 0.8), weights(1, 5, 0.8)}, c.weights());
    }

    @Test
    void theThresholdIsEightTokens() {
        // 7 tokens move whole
        WeightedChunks seven = clipL.encodeWeighted(cats(70) + "(" + cats(7) + ")");
        assertEquals(2, seven.rows());
        assertArrayEquals(row(ClipTokenizer.EOS, repeat(CAT, 70)), seven.ids()[0]);
        assertArrayEquals(weights(1, 7, 1.1), seven.weights()[1]);
        // 8 tokens split: 5 + 3
        WeightedChunks eight = clipL.encodeWeighted(cats(70) + "(" + cats(8) + ")");
        assertArrayEquals(row(ClipTokenizer.EOS, repeat(CAT, 75)), eight.ids()[0]);
        assertArrayEquals(row(ClipTokenizer.EOS, repeat(CAT, 3)), eight.ids()[1]);
        assertArrayEquals(weights(71, 5, 1.1), eight.weights()[0]);
        assertArrayEquals(weights(1, 3, 1.1), eight.weights()[1]);
    }

    @Test
    void aGroupLongerThanAChunkSpansSeveralRows() {
        WeightedChunks c = clipL.encodeWeighted("(" + cats(160) + ":1.5) dog");
        int[] dog = clipL.encode("dog");
        assertArrayEquals(new int[][] {row(ClipTokenizer.EOS, repeat(CAT, 75)), row(ClipTokenizer.EOS, repeat(CAT, 75)),
                row(ClipTokenizer.EOS, repeat(CAT, 10), dog)}, c.ids());
        assertArrayEquals(new double[][] {weights(1, 75, 1.5), weights(1, 75, 1.5), weights(1, 10, 1.5)}, c.weights());
    }

    @Test
    void afterAMovedGroupTheNextGroupsContinueInTheNewRow() {
        // a full first row of plain text (75), then a short weighted group and more plain text
        WeightedChunks c = clipL.encodeWeighted(cats(75) + "(dog:2) " + cats(3));
        int[] dog = clipL.encode("dog");
        assertArrayEquals(new int[][] {row(ClipTokenizer.EOS, repeat(CAT, 75)), row(ClipTokenizer.EOS, dog, repeat(CAT, 3))}, c.ids());
        assertArrayEquals(new double[][] {weights(0, 0, 1), weights(1, 1, 2.0)}, c.weights());
    }

    @Test
    void escapesReachTheTokenizerAsParentheses() {
        WeightedChunks c = clipL.encodeWeighted("\\(cat\\)");
        assertArrayEquals(new int[][] {row(ClipTokenizer.EOS, clipL.encode("(cat)"))}, c.ids());
        assertFalse(c.weighted());
    }

    @Test
    void embeddingNamesStartANewGroup() {
        // "embedding:" after whitespace cuts the run (ComfyUI's textual-inversion split), changing where groups fall
        int[] tail = clipL.encode("embedding:foo bar");
        assertTrue(tail.length < 8, "short group: " + tail.length);
        int before = 76 - tail.length; // does not leave room for the tail
        WeightedChunks c = clipL.encodeWeighted(cats(before) + "embedding:foo bar");
        assertArrayEquals(new int[][] {row(ClipTokenizer.EOS, repeat(CAT, before)), row(ClipTokenizer.EOS, tail)}, c.ids());
        // glued to a word it is no cut: one long group, split at 75
        WeightedChunks glued = clipL.encodeWeighted(cats(before) + "xembedding:foo bar");
        assertEquals(clipL.encodeChunks(cats(before) + "xembedding:foo bar").length, glued.rows());
        assertArrayEquals(clipL.encodeChunks(cats(before) + "xembedding:foo bar"), glued.ids());
    }

    @Test
    void wordGroupingMovesWordsAndLooksUpExactVocabularyEntries() {
        // old ComfyUI: "hello," is its own 2-token group; at 74 + 2 > 75 it moves whole, SEGMENT splits it
        int[] hello = clipL.encode("hello,");
        assertEquals(2, hello.length);
        String prompt = cats(74) + "hello,";
        WeightedChunks words = clipL.encodeWeighted(prompt, Grouping.WORD);
        assertArrayEquals(new int[][] {row(ClipTokenizer.EOS, repeat(CAT, 74)), row(ClipTokenizer.EOS, hello)}, words.ids());
        assertArrayEquals(clipL.encodeChunks(prompt), clipL.encodeWeighted(prompt, Grouping.SEGMENT).ids());
        // exact vocabulary hit: "A</w>" is id 288, the tokenizer would lower-case it to "a</w>" = 320
        assertArrayEquals(row(ClipTokenizer.EOS, new int[] {288, CAT}), clipL.encodeWeighted("A cat", Grouping.WORD).ids()[0]);
        assertArrayEquals(row(ClipTokenizer.EOS, new int[] {320, CAT}), clipL.encodeWeighted("A cat", Grouping.SEGMENT).ids()[0]);
        // newlines split words too
        assertArrayEquals(clipL.encodeWeighted("cat cat", Grouping.WORD).ids(), clipL.encodeWeighted("cat\ncat", Grouping.WORD).ids());
    }

    @Test
    void bothTowersGetTheSameWeights() {
        List<String> prompts = new ArrayList<>(List.of("a (cat:1.3) on ((a mat))", cats(73) + "(red big hat:1.2)",
                "(" + cats(100) + ":0.5) x"));
        for (String p : prompts) {
            assertArrayEquals(clipL.encodeWeighted(p).weights(), openClip.encodeWeighted(p).weights(), p);
        }
    }
}
