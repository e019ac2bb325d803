// Checks that a Kafka broker serves what the logship pipeline needs, not only that it answers:
// an idempotent produce acknowledged with acks=all (a producer id must be allocated), a consumer
// group join (a group coordinator must answer and assign), and an offset commit read back.
// Run by scripts/services/kafka.sh as a single-file source program:
//   java -cp '<kafka jars>/*' KafkaProbe.java BOOTSTRAP TOPIC TIMEOUT_MS
// Prints "serves: ..." and exits 0, or prints what did not happen in time and exits non-zero
// (2: produce, 3: group join, 4: commit).
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class KafkaProbe {
    public static void main(String[] args) {
        String bootstrap = args[0];
        String topic = args[1];
        long timeoutMs = Long.parseLong(args[2]);
        long started = System.nanoTime();

        Properties producerProps = new Properties();
        producerProps.put("bootstrap.servers", bootstrap);
        producerProps.put("enable.idempotence", "true");
        producerProps.put("acks", "all");
        producerProps.put("max.block.ms", Long.toString(timeoutMs));
        producerProps.put("request.timeout.ms", Long.toString(timeoutMs));
        producerProps.put("delivery.timeout.ms", Long.toString(timeoutMs + 1000));
        try (KafkaProducer<String, String> producer =
                new KafkaProducer<>(producerProps, new StringSerializer(), new StringSerializer())) {
            producer.send(new ProducerRecord<>(topic, 0, null, "probe-" + System.nanoTime()))
                .get(timeoutMs, TimeUnit.MILLISECONDS);
        } catch (Exception e) {
            fail(2, "an idempotent produce (acks=all) to " + topic + " was not acknowledged within "
                + timeoutMs + " ms: " + e);
        }

        Properties consumerProps = new Properties();
        consumerProps.put("bootstrap.servers", bootstrap);
        consumerProps.put("group.id", "logship-services-probe");
        consumerProps.put("enable.auto.commit", "false");
        consumerProps.put("auto.offset.reset", "latest");
        consumerProps.put("default.api.timeout.ms", Long.toString(timeoutMs));
        try (KafkaConsumer<String, String> consumer =
                new KafkaConsumer<>(consumerProps, new StringDeserializer(), new StringDeserializer())) {
            consumer.subscribe(List.of(topic));
            long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
            Set<TopicPartition> assigned = consumer.assignment();
            while (assigned.isEmpty() && System.nanoTime() < deadline) {
                consumer.poll(Duration.ofMillis(200));
                assigned = consumer.assignment();
            }
            if (assigned.isEmpty()) {
                fail(3, "a consumer group join (group logship-services-probe) got no assignment within "
                    + timeoutMs + " ms: no group coordinator served it");
            }
            TopicPartition partition = new TopicPartition(topic, 0);
            if (!assigned.contains(partition)) {
                fail(3, "the probe's group was assigned " + assigned + " without " + partition);
            }
            long position = consumer.position(partition, Duration.ofMillis(timeoutMs));
            try {
                consumer.commitSync(Map.of(partition, new OffsetAndMetadata(position)),
                    Duration.ofMillis(timeoutMs));
                OffsetAndMetadata committed =
                    consumer.committed(Set.of(partition), Duration.ofMillis(timeoutMs)).get(partition);
                if (committed == null || committed.offset() != position) {
                    fail(4, "an offset commit of " + position + " read back as " + committed);
                }
            } catch (RuntimeException e) {
                fail(4, "an offset commit was not answered within " + timeoutMs + " ms: " + e);
            }
        } catch (RuntimeException e) {
            fail(3, "a consumer group join failed: " + e);
        }
        System.out.printf("serves: idempotent produce, group join and offset commit in %d ms%n",
            TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - started));
    }

    private static void fail(int code, String message) {
        System.out.println(message);
        System.exit(code);
    }
}
