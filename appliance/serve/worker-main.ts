/**
 * Entry of a `serve` worker process (the primary forks this file; serve/cluster.ts). Nothing else
 * imports it.
 */
import { main } from './worker.js';

main();
