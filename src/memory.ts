// Garbage collection paced by the bytes of documents handled. The relay holds at most
// --batch-bytes of events at once, but each byte is copied on its way (the MongoDB driver's reply,
// the decoded document, the row's JSON text, the statement buffer of the target driver), and V8
// frees those copies late: with gigabytes of memory free it lets its heap grow to about four
// times what is live before a full collection, and Buffers outside the heap by 64 MB. With
// documents of megabytes the copies waiting to be freed were most of the relay's resident memory
// (bench/RESULTS.md, large). One full collection per --batch-bytes of documents handled keeps
// them to about that much; with small documents, which V8 collects as often anyway, its cost did
// not show in the benchmark.
import v8 from 'node:v8';
import vm from 'node:vm';

let fullCollection: (() => void) | null = null;

/** V8's full collection: `--expose-gc` set at run time, its `gc` taken from a new context. */
function collect(): void {
  if (!fullCollection) {
    v8.setFlagsFromString('--expose-gc');
    fullCollection = vm.runInNewContext('gc') as () => void;
  }
  fullCollection();
}

export class GarbagePacer {
  private handled = 0;

  constructor(private readonly everyBytes: number) {}

  /** Counts `bytes` of documents as done with; collects once they add up to `everyBytes`. */
  done(bytes: number): void {
    this.handled += bytes;
    if (this.handled < this.everyBytes) return;
    this.handled = 0;
    collect();
  }
}
