package jdiffusion.server;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.javalin.websocket.WsContext;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;

/**
 * The websocket clients by client id. As in ComfyUI, a message for a prompt goes to the client that queued it
 * (its client_id), and a message without a client (queue status) goes to everyone.
 */
final class Hub {
    private final Map<String, WsContext> clients = new ConcurrentHashMap<>();

    void add(String clientId, WsContext ctx) {
        clients.put(clientId, ctx);
    }

    void remove(String clientId, WsContext ctx) {
        clients.remove(clientId, ctx);
    }

    int size() {
        return clients.size();
    }

    /** Sends {type, data} to the client sid, or to every client when sid is null or not connected. */
    void send(String type, JsonNode data, String sid) {
        ObjectNode msg = PromptStore.JSON.createObjectNode();
        msg.put("type", type);
        msg.set("data", data);
        String text = msg.toString();
        if (sid != null) {
            WsContext c = clients.get(sid);
            if (c != null) {
                deliver(c, text);
            }
            return;
        }
        clients.values().forEach(c -> deliver(c, text));
    }

    void sendBinary(byte[] frame, String sid) {
        if (sid != null) {
            WsContext c = clients.get(sid);
            if (c != null) {
                deliverBinary(c, frame);
            }
            return;
        }
        clients.values().forEach(c -> deliverBinary(c, frame));
    }

    /** One writer at a time per connection; a client gone away is dropped, never fails the prompt. */
    private void deliver(WsContext c, String text) {
        synchronized (c) {
            try {
                if (c.session.isOpen()) {
                    c.session.getRemote().sendString(text);
                }
            } catch (Exception e) {
                clients.values().remove(c);
            }
        }
    }

    private void deliverBinary(WsContext c, byte[] frame) {
        synchronized (c) {
            try {
                if (c.session.isOpen()) {
                    c.session.getRemote().sendBytes(ByteBuffer.wrap(frame));
                }
            } catch (Exception e) {
                clients.values().remove(c);
            }
        }
    }
}
