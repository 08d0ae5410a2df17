// An order-book service and its load in one JVM, for corpus/capture.py (java, no packages).
//
//   java -Xms256m -Xmx256m corpus/JvmService.java
//
// The service keeps up to 60k customer accounts in a HashMap (an LRU by access order):
// each holds a name, a list of recent orders (objects with strings, a price history of
// doubles and a byte payload) and running totals. Two load threads place, amend and cancel
// orders at a rate that cycles through idle, steady and burst phases (2 s each), and a
// reporting thread aggregates over every account every few seconds: the heap sees quiet
// windows, steady allocation, bursts of garbage and the collector compacting it.
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;

public class JvmService {
    static final int MAX_ACCOUNTS = 60_000;
    static final String[] SYMBOLS = {"ACME", "GLOBX", "INITECH", "UMBRL", "HOOLI", "VANDL"};

    static final class Order {
        final long id;
        final String symbol;
        final String note;
        final double[] prices = new double[12];
        final byte[] payload;
        int quantity;
        boolean cancelled;

        Order(long id, SplittableRandom rng) {
            this.id = id;
            this.symbol = SYMBOLS[rng.nextInt(SYMBOLS.length)];
            this.note = "order " + id + " for " + symbol + " at " + System.nanoTime();
            this.quantity = 1 + rng.nextInt(500);
            double p = 10 + rng.nextDouble() * 990;
            for (int i = 0; i < prices.length; i++) {
                p *= 1 + (rng.nextDouble() - 0.5) * 0.01;
                prices[i] = p;
            }
            payload = new byte[32 + rng.nextInt(480)];
            for (int i = 0; i < payload.length; i += 8) payload[i] = (byte) rng.nextInt(256);
        }
    }

    static final class Account {
        final String name;
        final List<Order> orders = new ArrayList<>();
        long placed;
        double volume;

        Account(long key) {
            name = ("customer-" + key + "-" + Long.toHexString(key * 0x9E3779B97F4A7C15L));
        }
    }

    static final Map<Long, Account> accounts =
            new LinkedHashMap<>(MAX_ACCOUNTS * 2, 0.75f, true) {
                @Override
                protected boolean removeEldestEntry(Map.Entry<Long, Account> eldest) {
                    return size() > MAX_ACCOUNTS;
                }
            };
    static long nextOrder = 1;

    static void step(SplittableRandom rng) {
        long key = (long) Math.abs(rng.nextGaussian() * 20_000) % 100_000;
        synchronized (accounts) {
            Account a = accounts.computeIfAbsent(key, Account::new);
            int action = rng.nextInt(10);
            if (action < 6 || a.orders.isEmpty()) {
                Order o = new Order(nextOrder++, rng);
                a.orders.add(o);
                if (a.orders.size() > 20) a.orders.remove(0);
                a.placed++;
                a.volume += o.quantity * o.prices[o.prices.length - 1];
            } else if (action < 9) {
                Order o = a.orders.get(rng.nextInt(a.orders.size()));
                o.quantity = 1 + rng.nextInt(500);
                o.prices[rng.nextInt(o.prices.length)] *= 1.001;
            } else {
                a.orders.get(rng.nextInt(a.orders.size())).cancelled = true;
            }
        }
    }

    static double report() {
        double total = 0;
        StringBuilder sb = new StringBuilder();
        synchronized (accounts) {
            for (Account a : accounts.values()) {
                total += a.volume;
                if (a.placed % 97 == 0) sb.append(a.name).append(',');
            }
        }
        return total + sb.toString().getBytes(StandardCharsets.UTF_8).length;
    }

    public static void main(String[] args) throws Exception {
        // steps per 10 ms in each 2 s phase: idle, steady, burst, steady
        final int[] rates = {0, 40, 400, 40};
        final long start = System.nanoTime();
        for (int t = 0; t < 2; t++) {
            final long seed = 17 + t;
            Thread load = new Thread(() -> {
                SplittableRandom rng = new SplittableRandom(seed);
                while (true) {
                    long phase = (System.nanoTime() - start) / 2_000_000_000L;
                    int rate = rates[(int) (phase % rates.length)];
                    for (int i = 0; i < rate; i++) step(rng);
                    try {
                        Thread.sleep(10);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            });
            load.setDaemon(true);
            load.start();
        }
        System.out.println("running");
        System.out.flush();
        double sink = 0;
        while (true) {
            Thread.sleep(3000);
            sink += report();
            if (sink < 0) System.out.println(sink);
        }
    }
}
