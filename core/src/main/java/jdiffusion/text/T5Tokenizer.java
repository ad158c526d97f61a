package jdiffusion.text;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.text.BreakIterator;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Base64;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.regex.Pattern;
import java.util.zip.GZIPInputStream;

/**
 * The T5 v1.1 SentencePiece Unigram tokenizer of SD3 / SD3.5, behaving exactly like HuggingFace's
 * {@code T5TokenizerFast} on the {@code tokenizer.json} ComfyUI ships (shipped here as a resource).
 *
 * <p>Pipeline: literal special tokens ({@code <pad>}, {@code </s>}, {@code <unk>}, {@code <extra_id_N>}) are split off
 * the raw text first; each remaining segment is normalised (SentencePiece's precompiled NFKC-like charsmap, applied
 * per grapheme as the tokenizers library does; trailing whitespace stripped; runs of two or more spaces become one
 * {@code ▁}), spaces become {@code ▁} with one {@code ▁} prepended to a segment at the very start of the text, the
 * segment is split before every {@code ▁}, and each word is cut into pieces by Viterbi over the pieces' log
 * probabilities. A character no piece covers is {@code <unk>} (score: lowest piece score minus 10), and adjacent
 * unknowns fuse into one {@code <unk>}. No BOS; {@link #EOS} is appended by the padded forms.
 */
public final class T5Tokenizer {
    public static final int PAD = 0;
    public static final int EOS = 1;
    public static final int UNK = 2;
    /** diffusers' StableDiffusion3Pipeline default max_sequence_length. */
    public static final int DIFFUSERS_LENGTH = 256;
    /** ComfyUI pads T5 tokens to at least this many (min_length), and never truncates. */
    public static final int COMFY_MIN_LENGTH = 77;
    static final String RESOURCE = "/jdiffusion/vocab/t5/tokenizer.json.gz";
    private static final char SPACE = '\u2581';
    private static final double UNK_PENALTY = 10.0;
    private static final Pattern MULTI_SPACE = Pattern.compile(" {2,}");

    private static volatile T5Tokenizer shared;

    private final String[] pieces;
    private final double[] scores;
    private final Map<String, Integer> ids;
    private final TrieNode trie;
    private final double unkScore;
    private final Map<String, Integer> special;
    private final Precompiled normalizer;

    private T5Tokenizer(String[] pieces, double[] scores, Map<String, Integer> special, byte[] charsmap) {
        this.pieces = pieces;
        this.scores = scores;
        this.special = Map.copyOf(special);
        this.normalizer = new Precompiled(charsmap);
        Map<String, Integer> map = new HashMap<>(pieces.length * 2);
        TrieNode root = new TrieNode();
        double min = Double.POSITIVE_INFINITY;
        for (int i = 0; i < pieces.length; i++) {
            map.putIfAbsent(pieces[i], i);
            root.insert(pieces[i], i);
            min = Math.min(min, scores[i]);
        }
        this.ids = map;
        this.trie = root;
        this.unkScore = min - UNK_PENALTY;
    }

    /** The tokenizer of SD3's T5 (loaded once from the resource). */
    public static T5Tokenizer get() {
        T5Tokenizer t = shared;
        if (t == null) {
            synchronized (T5Tokenizer.class) {
                t = shared;
                if (t == null) {
                    t = load();
                    shared = t;
                }
            }
        }
        return t;
    }

    /** Number of pieces (32100; the T5 embedding has 32128 rows). */
    public int vocabSize() {
        return pieces.length;
    }

    /** The piece string of an id. */
    public String piece(int id) {
        return pieces[id];
    }

    /** The ids of text, no EOS, no length limit ({@code tokenizer(text, add_special_tokens=False)}). */
    public int[] encode(String text) {
        List<String> tokens = segments(text);
        int[] out = new int[tokens.size()];
        for (int i = 0; i < out.length; i++) {
            Integer id = special.get(tokens.get(i));
            if (id == null) {
                id = ids.get(tokens.get(i));
            }
            out[i] = id == null ? UNK : id;
        }
        return out;
    }

    /**
     * diffusers' form: ids + EOS, truncated to maxLength (keeping maxLength - 1 tokens and the EOS), padded with
     * {@link #PAD} to exactly maxLength.
     */
    public int[] encodePadded(String text, int maxLength) {
        if (maxLength < 1) {
            throw new IllegalArgumentException("T5 sequence length must be at least 1, got " + maxLength);
        }
        int[] raw = encode(text);
        int n = Math.min(raw.length, maxLength - 1);
        int[] out = new int[maxLength];
        System.arraycopy(raw, 0, out, 0, n);
        out[n] = EOS;
        return out;
    }

    /** ComfyUI's form: ids + EOS, never truncated, padded with {@link #PAD} to at least minLength. */
    public int[] encodeMinLength(String text, int minLength) {
        int[] raw = encode(text);
        int[] out = new int[Math.max(raw.length + 1, minLength)];
        System.arraycopy(raw, 0, out, 0, raw.length);
        out[raw.length] = EOS;
        return out;
    }

    /** The pieces of text as HuggingFace's convert_ids_to_tokens shows them (unknown text as {@code <unk>}). */
    public List<String> tokens(String text) {
        List<String> out = new ArrayList<>();
        for (int id : encode(text)) {
            out.add(pieces[id]);
        }
        return out;
    }

    /** The text of each token (special tokens as themselves, fused unknowns as their text). */
    private List<String> segments(String text) {
        List<String> out = new ArrayList<>();
        int start = 0;
        int i = 0;
        while (i < text.length()) {
            String match = text.charAt(i) == '<' ? specialAt(text, i) : null;
            if (match == null) {
                i++;
                continue;
            }
            if (i > start) {
                segment(text.substring(start, i), start == 0, out);
            }
            out.add(match);
            i += match.length();
            start = i;
        }
        if (start < text.length()) {
            segment(text.substring(start), start == 0, out);
        }
        return out;
    }

    /** The longest special token starting at i, or null. */
    private String specialAt(String text, int i) {
        String best = null;
        for (String s : special.keySet()) {
            if (text.startsWith(s, i) && (best == null || s.length() > best.length())) {
                best = s;
            }
        }
        return best;
    }

    /** Normalises, pre-tokenises and cuts one stretch of text between special tokens. */
    private void segment(String raw, boolean atStart, List<String> out) {
        String s = normalize(raw).replace(' ', SPACE);
        if (s.isEmpty()) {
            return;
        }
        if (atStart && s.charAt(0) != SPACE) {
            s = SPACE + s;
        }
        int wordStart = 0;
        for (int i = 1; i <= s.length(); i++) {
            if (i == s.length() || s.charAt(i) == SPACE) {
                viterbi(s.substring(wordStart, i), out);
                wordStart = i;
            }
        }
    }

    /** The tokenizer.json normalizer: Precompiled charsmap, strip right, {@code " {2,}"} to one {@code ▁}. */
    String normalize(String text) {
        String s = normalizer.normalize(text);
        int end = s.length();
        while (end > 0) {
            int cp = s.codePointBefore(end);
            if (!isWhitespace(cp)) {
                break;
            }
            end -= Character.charCount(cp);
        }
        return MULTI_SPACE.matcher(s.substring(0, end)).replaceAll(String.valueOf(SPACE));
    }

    /** Unicode White_Space (Rust's char::is_whitespace), which differs from Java's Character.isWhitespace. */
    private static boolean isWhitespace(int cp) {
        return cp >= 0x09 && cp <= 0x0D || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680
                || cp >= 0x2000 && cp <= 0x200A || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F
                || cp == 0x3000;
    }

    /** Best segmentation of one word (the tokenizers library's Unigram encode_optimized), appended to out. */
    private void viterbi(String word, List<String> out) {
        int n = word.length();
        double[] best = new double[n + 1];
        int[] from = new int[n + 1];
        int[] id = new int[n + 1];
        Arrays.fill(from, -1);
        for (int start = 0; start < n; ) {
            int charLen = Character.charCount(word.codePointAt(start));
            if (start > 0 && from[start] < 0) {
                // unreachable position (never happens: unknown characters always bridge one character)
                start += charLen;
                continue;
            }
            double base = best[start];
            boolean single = false;
            TrieNode node = trie;
            for (int i = start; i < n && node != null; ) {
                int cp = word.codePointAt(i);
                node = node.child(cp);
                i += Character.charCount(cp);
                if (node != null && node.id >= 0) {
                    double score = base + scores[node.id];
                    if (from[i] < 0 || score > best[i]) {
                        best[i] = score;
                        from[i] = start;
                        id[i] = node.id;
                    }
                    if (i - start == charLen) {
                        single = true;
                    }
                }
            }
            if (!single) {
                int end = start + charLen;
                double score = base + unkScore;
                if (from[end] < 0 || score > best[end]) {
                    best[end] = score;
                    from[end] = start;
                    id[end] = UNK;
                }
            }
            start += charLen;
        }
        List<String> reversed = new ArrayList<>();
        int unkEnd = -1;
        for (int end = n; end > 0; ) {
            int start = from[end];
            if (id[end] == UNK) {
                if (unkEnd < 0) {
                    unkEnd = end;
                }
            } else {
                if (unkEnd >= 0) {
                    reversed.add(word.substring(end, unkEnd));
                    unkEnd = -1;
                }
                reversed.add(word.substring(start, end));
            }
            end = start;
        }
        if (unkEnd >= 0) {
            reversed.add(word.substring(0, unkEnd));
        }
        for (int i = reversed.size() - 1; i >= 0; i--) {
            out.add(reversed.get(i));
        }
    }

    /** A trie over code points; id is the piece ending here, or -1. */
    private static final class TrieNode {
        int id = -1;
        Map<Integer, TrieNode> children;

        TrieNode child(int cp) {
            return children == null ? null : children.get(cp);
        }

        void insert(String piece, int pieceId) {
            TrieNode node = this;
            for (int i = 0; i < piece.length(); ) {
                int cp = piece.codePointAt(i);
                i += Character.charCount(cp);
                if (node.children == null) {
                    node.children = new HashMap<>(4);
                }
                node = node.children.computeIfAbsent(cp, k -> new TrieNode());
            }
            if (node.id < 0) {
                node.id = pieceId;
            }
        }
    }

    /**
     * SentencePiece's precompiled normaliser: a darts-clone double-array trie over UTF-8 bytes whose values are
     * offsets of NUL-terminated replacement strings. Applied as the tokenizers library does: per extended grapheme
     * cluster, the whole cluster when it is under 6 bytes and the trie knows a prefix of it (the first, shortest
     * match replaces the whole cluster), otherwise character by character.
     */
    static final class Precompiled {
        private final int[] units;
        private final byte[] strings;

        Precompiled(byte[] blob) {
            ByteBuffer b = ByteBuffer.wrap(blob).order(ByteOrder.LITTLE_ENDIAN);
            int trieBytes = b.getInt();
            if (trieBytes < 0 || trieBytes % 4 != 0 || trieBytes > blob.length - 4) {
                throw new IllegalStateException("T5 tokenizer resource: corrupt precompiled charsmap");
            }
            units = new int[trieBytes / 4];
            for (int i = 0; i < units.length; i++) {
                units[i] = b.getInt();
            }
            strings = Arrays.copyOfRange(blob, 4 + trieBytes, blob.length);
        }

        String normalize(String text) {
            if (text.isEmpty()) {
                return text;
            }
            StringBuilder out = new StringBuilder(text.length());
            BreakIterator graphemes = BreakIterator.getCharacterInstance(Locale.ROOT);
            graphemes.setText(text);
            int start = graphemes.first();
            for (int end = graphemes.next(); end != BreakIterator.DONE; start = end, end = graphemes.next()) {
                String g = text.substring(start, end);
                byte[] utf8 = g.getBytes(StandardCharsets.UTF_8);
                if (utf8.length < 6) {
                    String norm = transform(utf8);
                    if (norm != null) {
                        out.append(norm);
                        continue;
                    }
                }
                for (int i = 0; i < g.length(); ) {
                    int cp = g.codePointAt(i);
                    int len = Character.charCount(cp);
                    String norm = transform(g.substring(i, i + len).getBytes(StandardCharsets.UTF_8));
                    out.append(norm != null ? norm : g.substring(i, i + len));
                    i += len;
                }
            }
            return out.toString();
        }

        /** The replacement of the first (shortest) key that is a prefix of key, or null. */
        private String transform(byte[] key) {
            int pos = 0;
            int unit = units[0];
            pos ^= offset(unit);
            for (byte kb : key) {
                int c = kb & 0xFF;
                if (c == 0) {
                    return null;
                }
                pos ^= c;
                if (pos < 0 || pos >= units.length) {
                    return null;
                }
                unit = units[pos];
                if ((unit & 0x800000FF) != c) {
                    return null;
                }
                pos ^= offset(unit);
                if (((unit >>> 8) & 1) == 1) {
                    int value = units[pos] & 0x7FFFFFFF;
                    int endAt = value;
                    while (endAt < strings.length && strings[endAt] != 0) {
                        endAt++;
                    }
                    return new String(strings, value, endAt - value, StandardCharsets.UTF_8);
                }
            }
            return null;
        }

        private static int offset(int unit) {
            return (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
        }
    }

    private static T5Tokenizer load() {
        InputStream raw = T5Tokenizer.class.getResourceAsStream(RESOURCE);
        if (raw == null) {
            throw new IllegalStateException("T5 tokenizer resource missing: " + RESOURCE);
        }
        List<String> pieces = new ArrayList<>(32100);
        List<Double> scores = new ArrayList<>(32100);
        Map<String, Integer> special = new LinkedHashMap<>();
        byte[] charsmap = null;
        try (JsonParser p = new JsonFactory().createParser(new GZIPInputStream(raw))) {
            expect(p.nextToken(), JsonToken.START_OBJECT);
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String field = p.currentName();
                JsonToken v = p.nextToken();
                switch (field) {
                    case "added_tokens" -> readAddedTokens(p, v, special);
                    case "normalizer" -> charsmap = readCharsmap(p, v);
                    case "model" -> readModel(p, v, pieces, scores);
                    default -> p.skipChildren();
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException("T5 tokenizer resource unreadable: " + RESOURCE, e);
        }
        if (pieces.size() < 3 || charsmap == null || special.get("</s>") == null || special.get("</s>") != EOS
                || !"<unk>".equals(pieces.get(UNK)) || !"<pad>".equals(pieces.get(PAD))) {
            throw new IllegalStateException("T5 tokenizer resource is corrupt: " + pieces.size() + " pieces");
        }
        double[] s = new double[scores.size()];
        for (int i = 0; i < s.length; i++) {
            s[i] = scores.get(i);
        }
        return new T5Tokenizer(pieces.toArray(String[]::new), s, special, charsmap);
    }

    private static void readAddedTokens(JsonParser p, JsonToken v, Map<String, Integer> special) throws IOException {
        expect(v, JsonToken.START_ARRAY);
        while (p.nextToken() == JsonToken.START_OBJECT) {
            String content = null;
            int id = -1;
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String f = p.currentName();
                p.nextToken();
                switch (f) {
                    case "content" -> content = p.getText();
                    case "id" -> id = p.getIntValue();
                    default -> p.skipChildren();
                }
            }
            if (content != null && id >= 0) {
                special.put(content, id);
            }
        }
    }

    /** The base64 precompiled_charsmap of the normalizer (a Sequence containing a Precompiled step). */
    private static byte[] readCharsmap(JsonParser p, JsonToken v) throws IOException {
        if (v != JsonToken.START_OBJECT && v != JsonToken.START_ARRAY) {
            return null;
        }
        byte[] found = null;
        int depth = 1;
        while (depth > 0) {
            JsonToken t = p.nextToken();
            if (t == JsonToken.START_OBJECT || t == JsonToken.START_ARRAY) {
                depth++;
            } else if (t == JsonToken.END_OBJECT || t == JsonToken.END_ARRAY) {
                depth--;
            } else if (t == JsonToken.FIELD_NAME && "precompiled_charsmap".equals(p.currentName())) {
                p.nextToken();
                found = Base64.getDecoder().decode(p.getText());
            }
        }
        return found;
    }

    private static void readModel(JsonParser p, JsonToken v, List<String> pieces, List<Double> scores)
            throws IOException {
        expect(v, JsonToken.START_OBJECT);
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String f = p.currentName();
            JsonToken t = p.nextToken();
            if (f.equals("type") && !"Unigram".equals(p.getText())) {
                throw new IllegalStateException("T5 tokenizer resource: model type " + p.getText() + ", expected Unigram");
            }
            if (!f.equals("vocab")) {
                p.skipChildren();
                continue;
            }
            expect(t, JsonToken.START_ARRAY);
            while (p.nextToken() == JsonToken.START_ARRAY) {
                p.nextToken();
                pieces.add(p.getText());
                p.nextToken();
                scores.add(p.getDoubleValue());
                expect(p.nextToken(), JsonToken.END_ARRAY);
            }
        }
    }

    private static void expect(JsonToken got, JsonToken want) {
        if (got != want) {
            throw new IllegalStateException("T5 tokenizer resource is malformed: " + got + " where " + want + " belongs");
        }
    }
}
