package jdiffusion.text;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.text.Normalizer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.zip.GZIPInputStream;

/**
 * The CLIP byte-level BPE tokenizer, behaving exactly like HuggingFace's slow {@code CLIPTokenizer} without ftfy
 * (what diffusers and ComfyUI run). The vocabulary is OpenAI's {@code bpe_simple_vocab_16e6.txt.gz}, shipped as a
 * resource; CLIP-L, OpenCLIP-H and OpenCLIP-bigG all use it and differ only in the pad token.
 *
 * <p>Pipeline: split off literal special tokens, BERT BasicTokenizer cleaning (drop control characters, whitespace
 * to spaces, CJK ideographs as their own words, NFC, lower case, no accent stripping), CLIP's regex, byte-to-unicode
 * mapping, BPE merges with {@code </w>} at the end of each piece.
 */
public final class ClipTokenizer {
    public static final int BOS = 49406;
    public static final int EOS = 49407;
    /** The sequence length CLIP text encoders take: start token, 75 tokens, end token. */
    public static final int CONTEXT_LENGTH = 77;
    public static final int CHUNK_TOKENS = CONTEXT_LENGTH - 2;
    public static final int VOCAB_SIZE = 49408;

    private static final String START_TEXT = "<|startoftext|>";
    private static final String END_TEXT = "<|endoftext|>";
    private static final String RESOURCE = "/jdiffusion/vocab/bpe_simple_vocab_16e6.txt.gz";
    /** Merges are lines 2 .. 48895 of the vocabulary file: 49152 - 256 - 2 of them, as OpenAI's loader takes. */
    private static final int MERGES = 49152 - 256 - 2;
    private static final Pattern PIECES = Pattern.compile(
            "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}]+",
            Pattern.CASE_INSENSITIVE | Pattern.UNICODE_CASE | Pattern.UNICODE_CHARACTER_CLASS);

    private static volatile Vocabulary shared;

    private final Vocabulary vocab;
    private final int padId;
    /** Strings the tokenizer splits out of the text before anything else, with their ids. */
    private final Map<String, Integer> addedTokens;

    private ClipTokenizer(Vocabulary vocab, int padId, boolean padIsAddedToken) {
        this.vocab = vocab;
        this.padId = padId;
        Map<String, Integer> added = new HashMap<>();
        added.put(START_TEXT, BOS);
        added.put(END_TEXT, EOS);
        if (padIsAddedToken) {
            added.putIfAbsent(vocab.token(padId), padId);
        }
        this.addedTokens = Map.copyOf(added);
    }

    /** CLIP-L (SD1.x, SDXL text encoder 1): pads with the end token. */
    public static ClipTokenizer clipL() {
        return new ClipTokenizer(vocabulary(), EOS, false);
    }

    /**
     * OpenCLIP-H / bigG (SD2.x, SDXL text encoder 2) as ComfyUI tokenizes: pads with id 0 ('!'); a literal '!' in
     * the text is an ordinary character.
     */
    public static ClipTokenizer openClip() {
        return new ClipTokenizer(vocabulary(), 0, false);
    }

    /** Pads with padId; the text itself is tokenized as by {@link #clipL()}. */
    public static ClipTokenizer withPad(int padId) {
        return new ClipTokenizer(vocabulary(), padId, false);
    }

    /**
     * The tokenizer diffusers loads from a pipeline folder whose pad token is padId's string (SDXL tokenizer_2 and
     * SD2 use '!' = 0). HuggingFace registers the pad token as an added token, so every literal '!' in the text
     * becomes id 0 instead of the BPE token '!&lt;/w&gt;' (256); that is what the diffusers pipelines feed the model.
     */
    public static ClipTokenizer diffusers(int padId) {
        return new ClipTokenizer(vocabulary(), padId, true);
    }

    public int padId() {
        return padId;
    }

    /** The ids of text without start/end tokens, no length limit. */
    public int[] encode(String text) {
        List<String> tokens = tokens(text);
        int[] ids = new int[tokens.size()];
        for (int i = 0; i < ids.length; i++) {
            Integer added = addedTokens.get(tokens.get(i));
            ids[i] = added != null ? added : vocab.id(tokens.get(i));
        }
        return ids;
    }

    /** The BPE tokens (vocabulary strings, byte-mapped, {@code </w>} marking word ends) of text. */
    public List<String> tokens(String text) {
        List<String> out = new ArrayList<>();
        for (String segment : splitAdded(text)) {
            if (addedTokens.containsKey(segment)) {
                out.add(segment);
                continue;
            }
            String cleaned = String.join(" ", BasicCleaner.words(segment));
            Matcher m = PIECES.matcher(cleaned);
            while (m.find()) {
                String piece = m.group();
                if (piece.equals(START_TEXT) || piece.equals(END_TEXT)) {
                    // the slow tokenizer's BPE cache maps these (e.g. lower-cased "<|EndOfText|>") to themselves
                    out.add(piece);
                } else {
                    out.addAll(vocab.bpe(ByteMap.encode(piece)));
                }
            }
        }
        return out;
    }

    /**
     * The HuggingFace pipeline input: start token, at most 75 ids (longer text truncated), end token, padded to 77.
     */
    public int[] encodePadded(String text) {
        int[] ids = encode(text);
        return wrap(ids, 0, Math.min(ids.length, CHUNK_TOKENS));
    }

    /**
     * Plain long-prompt chunking, no prompt syntax: the ids split into chunks of 75, each wrapped in start/end and
     * padded to 77. An empty prompt gives one chunk (start, end, padding). For text without parentheses, escapes or
     * {@code embedding:} this equals ComfyUI's chunking ({@link #encodeWeighted(String)}), which is what
     * conditioning uses.
     */
    public int[][] encodeChunks(String text) {
        int[] ids = encode(text);
        int chunks = Math.max(1, (ids.length + CHUNK_TOKENS - 1) / CHUNK_TOKENS);
        int[][] out = new int[chunks][];
        for (int c = 0; c < chunks; c++) {
            int from = c * CHUNK_TOKENS;
            out[c] = wrap(ids, from, Math.min(ids.length, from + CHUNK_TOKENS) - from);
        }
        return out;
    }

    /** How {@link #encodeWeighted(String, Grouping)} cuts a prompt into the token groups its chunking keeps whole. */
    public enum Grouping {
        /**
         * Current ComfyUI: each weighted run of the prompt is tokenized as one piece (split only before a
         * whitespace-preceded {@code embedding:}), so the groups are runs, not words.
         */
        SEGMENT,
        /**
         * Older ComfyUI releases: each run is split on spaces and newlines and every word tokenized on its own; a
         * word whose exact text plus {@code </w>} is a vocabulary entry takes that id, not lower-cased ({@code A} is
         * 288, not 320 like {@code a}).
         */
        WORD
    }

    /** ComfyUI's max_word_length: a group this long or longer may be split across chunks, a shorter one moves whole. */
    public static final int LONG_GROUP_TOKENS = 8;
    private static final String EMBEDDING_PREFIX = "embedding:";

    /** {@link #encodeWeighted(String, Grouping)} as current ComfyUI does it ({@link Grouping#SEGMENT}). */
    public WeightedChunks encodeWeighted(String prompt) {
        return encodeWeighted(prompt, Grouping.SEGMENT);
    }

    /**
     * Textual-inversion embeddings by the name written after {@code embedding:} in a prompt, for one text encoder:
     * the vectors (rows), or null when there is no such embedding.
     */
    @FunctionalInterface
    public interface EmbeddingLookup {
        float[][] vectors(String name);
    }

    /** {@link #encodeWeighted(String, Grouping)} without embeddings: {@code embedding:name} stays text. */
    public WeightedChunks encodeWeighted(String prompt, Grouping grouping) {
        return encodeWeighted(prompt, grouping, null);
    }

    /**
     * ComfyUI's {@code SDTokenizer.tokenize_with_weights}: the prompt's weight syntax ({@link PromptParser}) gives
     * runs of text with weights; each run is tokenized in groups ({@link Grouping}); the groups fill rows of start +
     * 75 tokens + end. A group that does not fit in the rest of a row moves whole to a new row (the old one is
     * ended and padded) unless it has {@link #LONG_GROUP_TOKENS} tokens or more, in which case it fills the row and
     * continues in the next. An empty prompt gives one row (start, end, padding).
     */
    public WeightedChunks encodeWeighted(String prompt, Grouping grouping, EmbeddingLookup embeddings) {
        List<int[]> groupIds = new ArrayList<>();
        List<Double> groupWeights = new ArrayList<>();
        List<float[]> vectors = new ArrayList<>();
        for (PromptParser.Segment s : PromptParser.parse(prompt)) {
            for (String piece : grouping == Grouping.SEGMENT ? splitBeforeEmbeddings(s.text()) : words(s.text())) {
                if (embeddings != null && piece.startsWith(EMBEDDING_PREFIX)) {
                    piece = embedding(piece, embeddings, vectors, groupIds, groupWeights, s.weight());
                    if (piece.isEmpty()) {
                        continue;
                    }
                }
                groupIds.add(grouping == Grouping.SEGMENT ? encode(piece) : encodeWord(piece));
                groupWeights.add(s.weight());
            }
        }
        return chunk(groupIds, groupWeights, vectors);
    }

    /**
     * ComfyUI's {@code _try_get_embedding} for a piece starting with {@code embedding:}: the name is the first
     * whitespace-separated word (newlines stripped); when no embedding has that name but it does without commas
     * around it, that one is taken and the commas go back to the text. The vectors become one group (one slot
     * each, the piece's weight); a name that is not found is dropped (ComfyUI warns and ignores it). Returns the
     * leftover text to tokenize after the embedding ("" for none).
     */
    private static String embedding(String piece, EmbeddingLookup lookup, List<float[]> vectors, List<int[]> groupIds,
                                    List<Double> groupWeights, double weight) {
        String name = stripNewlines(piece.substring(EMBEDDING_PREFIX.length()));
        List<String> words = pythonSplit(name);
        if (words.isEmpty()) {
            return "";
        }
        String first = words.getFirst();
        String leftover = String.join(" ", words.subList(1, words.size()));
        float[][] found = lookup.vectors(first);
        if (found == null) {
            String stripped = stripCommas(first);
            if (stripped.length() < first.length()) {
                found = stripped.isEmpty() ? null : lookup.vectors(stripped);
                leftover = first.substring(stripped.length()) + " " + leftover;
            }
        }
        if (found == null) {
            System.getLogger("jdiffusion").log(System.Logger.Level.WARNING,
                    "embedding:" + first + " does not exist, ignoring");
        } else if (found.length > 0) {
            int[] ids = new int[found.length];
            for (int i = 0; i < found.length; i++) {
                ids[i] = VOCAB_SIZE + vectors.size();
                vectors.add(found[i]);
            }
            groupIds.add(ids);
            groupWeights.add(weight);
        }
        return leftover;
    }

    private static String stripNewlines(String s) {
        int from = 0;
        int to = s.length();
        while (from < to && s.charAt(from) == '\n') {
            from++;
        }
        while (to > from && s.charAt(to - 1) == '\n') {
            to--;
        }
        return s.substring(from, to);
    }

    private static String stripCommas(String s) {
        int from = 0;
        int to = s.length();
        while (from < to && s.charAt(from) == ',') {
            from++;
        }
        while (to > from && s.charAt(to - 1) == ',') {
            to--;
        }
        return s.substring(from, to);
    }

    /** Python's {@code str.split()}: runs of whitespace separate words, no empty words. */
    private static List<String> pythonSplit(String s) {
        List<String> out = new ArrayList<>();
        int i = 0;
        while (i < s.length()) {
            while (i < s.length() && PromptParser.isPythonSpace(s.charAt(i))) {
                i++;
            }
            int start = i;
            while (i < s.length() && !PromptParser.isPythonSpace(s.charAt(i))) {
                i++;
            }
            if (i > start) {
                out.add(s.substring(start, i));
            }
        }
        return out;
    }

    /** Rows of 77 built as ComfyUI's loop builds them; see {@link #encodeWeighted(String, Grouping)}. */
    private WeightedChunks chunk(List<int[]> groups, List<Double> weights, List<float[]> vectors) {
        RowBuilder rows = new RowBuilder();
        for (int g = 0; g < groups.size(); g++) {
            int[] ids = groups.get(g);
            double weight = weights.get(g);
            boolean large = ids.length >= LONG_GROUP_TOKENS;
            int at = 0;
            while (at < ids.length) {
                int room = CHUNK_TOKENS + 1 - rows.size();
                if (ids.length - at <= room) {
                    rows.add(ids, at, ids.length - at, weight);
                    at = ids.length;
                } else if (large) {
                    rows.add(ids, at, room, weight);
                    at += room;
                    rows.endRow();
                } else {
                    rows.endRow();
                }
            }
        }
        rows.endRow();
        return rows.build(vectors);
    }

    /** Rows under construction: each starts with the start token and is ended with the end token and padding. */
    private final class RowBuilder {
        private final List<int[]> ids = new ArrayList<>();
        private final List<double[]> weights = new ArrayList<>();
        private int[] row;
        private double[] rowWeights;
        private int size;

        RowBuilder() {
            open();
        }

        int size() {
            return size;
        }

        void add(int[] src, int from, int count, double weight) {
            System.arraycopy(src, from, row, size, count);
            Arrays.fill(rowWeights, size, size + count, weight);
            size += count;
        }

        /** Appends the end token, pads, and opens the next row. */
        void endRow() {
            row[size] = EOS;
            ids.add(row);
            weights.add(rowWeights);
            open();
        }

        WeightedChunks build(List<float[]> vectors) {
            // the row endRow opened last is never used
            return new WeightedChunks(ids.toArray(int[][]::new), weights.toArray(double[][]::new), vectors);
        }

        private void open() {
            row = new int[CONTEXT_LENGTH];
            Arrays.fill(row, padId);
            row[0] = BOS;
            rowWeights = new double[CONTEXT_LENGTH];
            Arrays.fill(rowWeights, 1.0);
            size = 1;
        }
    }

    /**
     * Current ComfyUI cuts a run at every {@code " embedding:"} and {@code "\nembedding:"} (Python's
     * {@code re.split(' embedding:|\nembedding:')}: the space or newline goes, the prefix starts the next piece), and
     * drops empty pieces.
     */
    private static List<String> splitBeforeEmbeddings(String text) {
        List<String> pieces = new ArrayList<>();
        int start = 0;
        int i = 0;
        while (i < text.length()) {
            char c = text.charAt(i);
            if ((c == ' ' || c == '\n') && text.startsWith(EMBEDDING_PREFIX, i + 1)) {
                pieces.add(text.substring(start, i));
                start = i + 1;
                i += 1 + EMBEDDING_PREFIX.length();
                continue;
            }
            i++;
        }
        pieces.add(text.substring(start));
        pieces.removeIf(String::isEmpty);
        return pieces;
    }

    /** Old ComfyUI's words: newlines become spaces, then Python's {@code split(' ')} without empty strings. */
    private static List<String> words(String text) {
        List<String> words = new ArrayList<>(Arrays.asList(text.replace('\n', ' ').split(" ", -1)));
        words.removeIf(String::isEmpty);
        return words;
    }

    /** Old ComfyUI's word lookup: the raw word plus {@code </w>} if that is a vocabulary entry, else the tokenizer. */
    private int[] encodeWord(String word) {
        Integer exact = vocab.exact(word + "</w>");
        return exact != null ? new int[] {exact} : encode(word);
    }

    private int[] wrap(int[] ids, int from, int count) {
        int[] row = new int[CONTEXT_LENGTH];
        Arrays.fill(row, padId);
        row[0] = BOS;
        System.arraycopy(ids, from, row, 1, count);
        row[count + 1] = EOS;
        return row;
    }

    /** Splits out exact added-token strings first (longest match), as the slow tokenizer's added-token trie does. */
    private List<String> splitAdded(String text) {
        List<String> parts = new ArrayList<>();
        int start = 0;
        int i = 0;
        while (i < text.length()) {
            String special = null;
            for (String a : addedTokens.keySet()) {
                if (text.startsWith(a, i) && (special == null || a.length() > special.length())) {
                    special = a;
                }
            }
            if (special == null) {
                i++;
                continue;
            }
            if (i > start) {
                parts.add(text.substring(start, i));
            }
            parts.add(special);
            i += special.length();
            start = i;
        }
        if (start < text.length()) {
            parts.add(text.substring(start));
        }
        return parts;
    }

    private static Vocabulary vocabulary() {
        Vocabulary v = shared;
        if (v == null) {
            synchronized (ClipTokenizer.class) {
                if (shared == null) {
                    shared = Vocabulary.load();
                }
                v = shared;
            }
        }
        return v;
    }

    /** BERT BasicTokenizer as CLIPTokenizer configures it: no accent stripping, no punctuation split. */
    static final class BasicCleaner {
        private BasicCleaner() {
        }

        static List<String> words(String text) {
            StringBuilder sb = new StringBuilder(text.length() + 8);
            text.codePoints().forEach(cp -> {
                if (cp == 0 || cp == 0xFFFD || isControl(cp)) {
                    return;
                }
                if (isWhitespace(cp)) {
                    sb.append(' ');
                } else if (isCjkIdeograph(cp)) {
                    // each ideograph becomes its own word
                    sb.append(' ').appendCodePoint(cp).append(' ');
                } else {
                    sb.appendCodePoint(cp);
                }
            });
            String normalized = Normalizer.normalize(sb, Normalizer.Form.NFC);
            List<String> words = new ArrayList<>();
            for (String w : splitPythonWhitespace(normalized)) {
                words.add(w.toLowerCase(Locale.ROOT));
            }
            return words;
        }

        private static boolean isWhitespace(int cp) {
            return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || Character.getType(cp) == Character.SPACE_SEPARATOR;
        }

        private static boolean isControl(int cp) {
            if (cp == '\t' || cp == '\n' || cp == '\r') {
                return false;
            }
            int t = Character.getType(cp);
            // Unicode categories C*: Cc, Cf, Cs, Co, Cn
            return t == Character.CONTROL || t == Character.FORMAT || t == Character.SURROGATE
                    || t == Character.PRIVATE_USE || t == Character.UNASSIGNED;
        }

        private static boolean isCjkIdeograph(int cp) {
            return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) || (cp >= 0x20000 && cp <= 0x2A6DF)
                    || (cp >= 0x2A700 && cp <= 0x2B73F) || (cp >= 0x2B740 && cp <= 0x2B81F)
                    || (cp >= 0x2B820 && cp <= 0x2CEAF) || (cp >= 0xF900 && cp <= 0xFAFF)
                    || (cp >= 0x2F800 && cp <= 0x2FA1F);
        }

        /** Python's str.split(): runs of Unicode whitespace (str.isspace) separate words. */
        private static List<String> splitPythonWhitespace(String s) {
            List<String> out = new ArrayList<>();
            int i = 0;
            int n = s.length();
            while (i < n) {
                while (i < n && isPythonSpace(s.codePointAt(i))) {
                    i += Character.charCount(s.codePointAt(i));
                }
                int start = i;
                while (i < n && !isPythonSpace(s.codePointAt(i))) {
                    i += Character.charCount(s.codePointAt(i));
                }
                if (i > start) {
                    out.add(s.substring(start, i));
                }
            }
            return out;
        }

        private static boolean isPythonSpace(int cp) {
            if (cp >= 0x09 && cp <= 0x0D || cp >= 0x1C && cp <= 0x1F || cp == 0x85) {
                return true;
            }
            int t = Character.getType(cp);
            return t == Character.SPACE_SEPARATOR || t == Character.LINE_SEPARATOR || t == Character.PARAGRAPH_SEPARATOR;
        }
    }

    /** GPT-2's reversible byte to printable-character table, so BPE works on strings without raw control bytes. */
    static final class ByteMap {
        static final char[] BYTE_TO_CHAR = new char[256];
        /** The 256 byte symbols in the table's own order (printable bytes first), which fixes vocabulary ids 0-255. */
        static final char[] ORDER = new char[256];

        static {
            boolean[] printable = new boolean[256];
            int k = 0;
            for (int b = 0; b < 256; b++) {
                if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) {
                    printable[b] = true;
                    BYTE_TO_CHAR[b] = (char) b;
                    ORDER[k++] = (char) b;
                }
            }
            int extra = 0;
            for (int b = 0; b < 256; b++) {
                if (!printable[b]) {
                    BYTE_TO_CHAR[b] = (char) (256 + extra++);
                    ORDER[k++] = BYTE_TO_CHAR[b];
                }
            }
        }

        private ByteMap() {
        }

        static String encode(String piece) {
            byte[] bytes = piece.getBytes(StandardCharsets.UTF_8);
            char[] chars = new char[bytes.length];
            for (int i = 0; i < bytes.length; i++) {
                chars[i] = BYTE_TO_CHAR[bytes[i] & 0xFF];
            }
            return new String(chars);
        }
    }

    /** Token strings to ids and the merge ranks, built from the merge list as OpenAI's and HF's loaders do. */
    static final class Vocabulary {
        private final Map<String, Integer> ids;
        private final Map<String, Integer> mergeRank;
        private final Map<String, List<String>> cache = new ConcurrentHashMap<>();
        private final String[] byId = new String[VOCAB_SIZE];

        private Vocabulary(Map<String, Integer> ids, Map<String, Integer> mergeRank) {
            this.ids = ids;
            this.mergeRank = mergeRank;
            ids.forEach((token, id) -> byId[id] = token);
        }

        static Vocabulary load() {
            List<String[]> merges = readMerges();
            Map<String, Integer> ids = new HashMap<>(VOCAB_SIZE * 2);
            for (char c : ByteMap.ORDER) {
                ids.put(String.valueOf(c), ids.size());
            }
            for (char c : ByteMap.ORDER) {
                ids.put(c + "</w>", ids.size());
            }
            Map<String, Integer> rank = new HashMap<>(MERGES * 2);
            for (String[] m : merges) {
                rank.put(m[0] + " " + m[1], rank.size());
                ids.put(m[0] + m[1], ids.size());
            }
            ids.put(START_TEXT, ids.size());
            ids.put(END_TEXT, ids.size());
            if (ids.size() != VOCAB_SIZE || ids.get(END_TEXT) != EOS) {
                throw new IllegalStateException("CLIP vocabulary resource is corrupt: " + ids.size() + " entries, expected " + VOCAB_SIZE);
            }
            return new Vocabulary(Map.copyOf(ids), Map.copyOf(rank));
        }

        private static List<String[]> readMerges() {
            InputStream raw = ClipTokenizer.class.getResourceAsStream(RESOURCE);
            if (raw == null) {
                throw new IllegalStateException("CLIP vocabulary resource missing: " + RESOURCE);
            }
            List<String[]> merges = new ArrayList<>(MERGES);
            try (BufferedReader r = new BufferedReader(new InputStreamReader(new GZIPInputStream(raw), StandardCharsets.UTF_8))) {
                r.readLine(); // version header
                String line;
                while (merges.size() < MERGES && (line = r.readLine()) != null) {
                    String[] pair = line.split(" ");
                    if (pair.length != 2) {
                        throw new IllegalStateException("CLIP vocabulary resource: bad merge line '" + line + "'");
                    }
                    merges.add(pair);
                }
            } catch (IOException e) {
                throw new UncheckedIOException("CLIP vocabulary resource unreadable: " + RESOURCE, e);
            }
            if (merges.size() != MERGES) {
                throw new IllegalStateException("CLIP vocabulary resource truncated: " + merges.size() + " merges, expected " + MERGES);
            }
            return merges;
        }

        /** The id of a vocabulary string exactly as given (no lower-casing, no byte mapping), or null. */
        Integer exact(String token) {
            return ids.get(token);
        }

        String token(int id) {
            return byId[id];
        }

        int id(String token) {
            Integer id = ids.get(token);
            // unreachable for byte-mapped input (every byte symbol is in the vocabulary); HF would map to unk = EOS
            return id == null ? EOS : id;
        }

        /** BPE of one byte-mapped piece: repeatedly merge the lowest-ranked adjacent pair. */
        List<String> bpe(String piece) {
            return cache.computeIfAbsent(piece, this::merge);
        }

        private List<String> merge(String piece) {
            List<String> word = new ArrayList<>(piece.length());
            for (int i = 0; i < piece.length() - 1; i++) {
                word.add(String.valueOf(piece.charAt(i)));
            }
            word.add(piece.charAt(piece.length() - 1) + "</w>");
            while (word.size() > 1) {
                int best = Integer.MAX_VALUE;
                String first = null;
                String second = null;
                for (int i = 0; i < word.size() - 1; i++) {
                    Integer r = mergeRank.get(word.get(i) + " " + word.get(i + 1));
                    if (r != null && r < best) {
                        best = r;
                        first = word.get(i);
                        second = word.get(i + 1);
                    }
                }
                if (first == null) {
                    break;
                }
                word = mergeAll(word, first, second);
            }
            return List.copyOf(word);
        }

        /** Replaces every left-to-right, non-overlapping occurrence of (first, second) by their concatenation. */
        private static List<String> mergeAll(List<String> word, String first, String second) {
            List<String> out = new ArrayList<>(word.size());
            int i = 0;
            while (i < word.size()) {
                if (i < word.size() - 1 && word.get(i).equals(first) && word.get(i + 1).equals(second)) {
                    out.add(first + second);
                    i += 2;
                } else {
                    out.add(word.get(i));
                    i++;
                }
            }
            return out;
        }
    }
}
