/**
 * Bit-exactness of the PDQ arithmetic. pdq.test.ts holds the acceptance bar (distance <= 10 from the
 * C++ reference); this file pins what safespot actually achieves, so that a speed change that alters
 * any float rounding fails here: the reference vectors decode and hash to exactly the reference's
 * hashes, qualities and dihedral variants, and generated pixel buffers (no decoder involved) hash to
 * the values the float32 port gave before any speed work.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeForPdq } from '../../appliance/serve/image-decode.js';
import { DIHEDRAL_ORDER, lumaFromPixels, pdqFromLuma, pdqFromPixels, type Pixels } from '../../policy/pdq.js';
import { PDQ_VECTORS } from '../helpers/vectors.js';

const VECTORS = PDQ_VECTORS;

interface Vector {
  file: string;
  pdq: string;
  quality: number;
  pdq_dihedral?: Record<string, string>;
}
const expected = JSON.parse(readFileSync(join(VECTORS, 'expected.json'), 'utf8')) as { vectors: Vector[] };

t.test('reference vectors: identical hash, quality and dihedral variants (sharp 0.35 decoding)', async (t) => {
  for (const v of expected.vectors) {
    const img = await decodeForPdq(readFileSync(join(VECTORS, v.file)));
    const got = pdqFromPixels(img.pixels, { dihedral: true });
    t.same([got.hash, got.quality], [v.pdq, v.quality], `${v.file}: hash and quality`);
    if (v.pdq_dihedral) t.same(got.dihedral, DIHEDRAL_ORDER.map((name) => v.pdq_dihedral![name]), `${v.file}: dihedral variants`);
  }
});

/** Deterministic pixels: xorshift noise over a diagonal ramp, so the image has structure PDQ sees. */
function pixels(width: number, height: number, channels: Pixels['channels'], seed: number): Pixels {
  const data = new Uint8Array(width * height * channels);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < data.length; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    data[i] = s & 0xff;
  }
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let k = 0; k < channels; k++) {
        const i = (y * width + x) * channels + k;
        data[i] = (data[i]! >> 2) + ((x * 3 + y * 5 * (k + 1)) % 192);
      }
    }
  }
  return { data, width, height, channels };
}

// [width, height, channels, seed, hash, quality, dihedral variants 1..7], from the port before any
// speed work (itself identical to the reference on every vector). Sizes cover 512 on both sides,
// odd sizes, 64x64 (no filter), the 5 px minimum, a window of 1 along one axis, and every channel count.
const GOLDEN: Array<[number, number, Pixels['channels'], number, string, number, string[]]> = [
  [512, 512, 3, 1, '5e5251517b7450dc547b6da27d4d5f47758456905754500475d06c0f5dcf5d4d', 100, [
    '000000007eff0404bf2f7412a7639854b7eb04d4bffd27977e87cc48df3fb6f8',
    '0ba7dbf92e20f657212ac7012abaf5ed20c8fd3e0a20fbbc2887d685088af7e5',
    '5555aaaa2bc9aeaae27acabaf03432aec19faa3eeb41a9ae4bd262a28a4a2a72',
    '5ef28eac7b758300747b90007d6fa0b8759ca82b5f558ec97dd283d05ddfa0a0',
    '0ba7240e2eb92dab292e3eff2abb0ab220f923e52aa3257328a7397a2e9a2aba',
    '0000ffff268cfbfba7078fefa16067ab14cafb2b2c00f8681a0733b78d064b07',
    '555555553bd95155e27a3545f635cd51c39f5181eb7152504bd2915d9a4ad50d',
  ]],
  [512, 317, 4, 2, '08a85df7000a5ffd23b87d5f08265e39229e75ff200755f5286751d70a4a74e7', 100, [
    '0000aaaa0cedaaaad70baaae198eababf8d5aba9db59a22bbdc2a90b66efaa82',
    '5d75d55d555fd54576c4d6f55950e40375c0d7417552f5015510d97d5d02d609',
    '555500007dfc0100be5f0a04efdf0d01aded011b9e8c19d3fbd703ffbbfe0aaa',
    '0aaaa2082a8aa83a2fbbaba00e2fb3de22bfaa9e2087aa5e2ae7aeae0a5f8bdc',
    '5dfd08a255df0aa877ed280a5d730b6c77cb20aa755200a07f7626825f1f29f6',
    '000055550ce95555d70a555119825c54d8d5545fdb595dd4bdc256fd66ef557d',
    '5555ffff09b0feff8206fdfb0c41f2fe0c80fee48404e62c6005fc042122f555',
  ]],
  [300, 512, 1, 3, 'f4a881ffdcaa41be34a051eef4a241eef48851be5cea85abf42a41ef94a841ea', 100, [
    'e29a48008a880111202041440000aaaafff7ba8affffa7bbfdffaaba777dabab',
    'a1fd2b5481f72b1461e5fb40a1f6eb44a1ddfb1409972f01217fcb4481fdeb40',
    'bfcfe2badffdfbbff575ffef55550000aaa21070aaaa0d15a8aa0011aa281141',
    'fcaa7e00dcaabe41b4baae10f4a2be11f4a8ae417cea7a54f42abe10d4a8be15',
    'a1fdc4aa89ff00ea61ed00baa1f714bba1fd04aa09bf90bea17f04aa81fd10bb',
    'e29ab7ed8a88aeea2020aaba00005555fff74525ff7f5040f5ff5544777d4014',
    'a7c70d45dfd90440557500105555ffffaaa2ef8faa0af2ea808afbee2228a8ba',
  ]],
  [64, 64, 3, 4, '5caa208ff59bd5128c2330325966f958bc2bf75e7d74aa011776ef5475105744', 100, [
    '3990cdb945f64ddf8bb44711004dec98e000fc938ea8ca93e1c0bd93fec8b76f',
    '09ff8aad81ceffb8d9769a98043313fa795ecdf4282122ab4023cdfe3045a9aa',
    '5c4566131083e235dce1edbb5510463ab5555639db5d6039b5951738ab9d3dc5',
    '1caadf70549baaed8c23cfcd516606af2c0b88a11d5457fe057690ab6500fcfb',
    '49ff75da81cf8047d97675670c33fc0df97e320b6821fd5453233a0130555655',
    '39d4b36765f6b7eb8bb4b8ef005d336fe000036d8ea8356ee1c0426dfec86890',
    '7c4518cc10b31d82dce512445510b9c5f555a9c6db7d9fc4f595e8c6ab9dc23a',
  ]],
  [65, 63, 2, 5, '5ca2f933c4af552a5f4b003b656a5dca480f59dadf7211c7ce56ddd4a1117884', 100, [
    '632e0dda4203269ac9ed44d30828a489a155f493f620fb913fc0df62fff8bb6d',
    '01f75b9b91faff80421faa91103ff760155ab3708027ab2d93037f7e5444da2e',
    '3579a6f815548c3054ddee795d5d0e23f4005e39a375113b6a9575c8eaad11c7',
    '54a20ecec4aeaad5174affc4456aa235480fee25d572fe78ce562a2b01118f7b',
    '09f7ac7691fb007f4a1f556eb03fc89f5d5a4c8f8a2754d2db038881f4442dd1',
    '602efbed4203d975c9edbb2c08285b76a1550b7cf620446e3fc0209dfff86c92',
    '35795907155473cf541511865d5df1dcf400a1c6a375eec46a958a37eaadce38',
  ]],
  [5, 5, 3, 6, '3c8d6c5bcb7293a4358d69d8348d9726cb726e1b348d6c5bcb7291a4348d68d9', 33, [
    '318c9b26ce7364d9e4d9358d21c8ce739e279b66318c9b26ce7364d961d8358c',
    '69d8c6f19e273b0e61d8c37261d83d8c9e27c4b161d8c6f19e273b0e61d8c273',
    '64d9318c9b26ce73318c9e27749d64d9cb7231cc64d9318c9b26ce73348d9f26',
    '348d93a4cb726e5b348d9727348d68d9cb7291e4348d93a4cb726e5b348d9726',
    '69d8390e9e27c4f161d83d8d61d8c6739e273b4e61d8390e9e27c4f161d83d8c',
    '318c64d9ce739b26e4d9cb7231c83d8c9e276499318c64d9ce739b2661d8ca73',
    '64d9ce739b26318cb18c61d8749d9f26cb72ce3364d9ce739b26318c348d60d9',
  ]],
  [129, 7, 3, 7, '31aa771a8e55c8e5c47765077533628d9b95557a646a9c728acc9af8318a771a', 100, [
    '389ca09ec7233d38309c938e618d393c918ec7c3da74952ac16fc277ce73c07f',
    '64ffdd90db00624d9122cfad2066c827cec0ff90313f26d8df99305264dfddb0',
    '6dc90a349276979265c93b2474d89396c4db6d69df213f80943a68dd9b266ad5',
    '31aa8ae58e55373ac4779af875339d729b95aac5646a738d8acc6507318a88e5',
    '64ff226fdb009db091223052246637d8cec0006f313fd927df99cfad64df224f',
    '389c5f61c723c2d7309c6e71618dc6c3918e387c9a746ad5c16f3d88ce733f80',
    '6dc9f5cb9276686d65c9c4db34d86c69c4db92968f21c07f943a97228b26952a',
  ]],
  [511, 260, 3, 8, '2aa2fdd7a2a2088a77fd00a27ff7002857fc22a656ff07a27387143777f620a8', 100, [
    '6000b5556a4bb555d200b54928bab5657e7bb55dabd7b5591981b511d23ab5d3',
    '7fff57fdf7f7a22822a8aa2a2aa2aa8202a98a2e03aaaf1a2ed2bebf22a38a02',
    '35551fff3b041ffb83551fe3480f1fcb282a1fe7c8001fe300c41fab03291f39',
    '08200220a080f55577f5d5557d57fd57555cdd5854d7d8015387ea4857d4df57',
    '5d77a882f7f55ddf22a855d528a2557d022975f1038252f726d2516022a375fd',
    '60004aaaea4b4aaed2004ab6aafa4a9afefb4aa2aff74aa619a14aeef67e4a2c',
    '3555e000bf1ee004875de01cffffe030ebaee008fee6e01cdcf4e044a77fe086',
  ]],
  [200, 200, 3, 9, '8495256a2695e76aa8bf456aafc08a95afc1201534d1f115a795ae1daf95ee17', 100, [
    '9b9ffbee7affffcf0b870951338fa965abaaa95f5c0056805c0456a05c015600',
    '51c08fc073c04dc0fdeaefc0fa95203ffa948abf61845bbff2c004b7fac040bd',
    '4eca41442faa55655e52a3ba66da03cffeff03f50955fc2a0951fc0a0154fcaa',
    '0495da9526951895a8bdba95afc0756aa7c1dbea34d10eeaa79551e2af9511e8',
    'd1c0703f73c0f23ffdea103ffa95dfc0fa9475406184a440f2c0fb48fac0bf42',
    '9b9f14117aff00300b87f6af338f569aabaa56a05c00a97f5c04a95f5c01a9ff',
    '4ecabebb2faaaa9a5ed25c0466dafc30fefffc0a095503d5095103f509540355',
  ]],
];

t.test('generated pixels hash exactly as before (every float rounding unchanged)', async (t) => {
  for (const [w, h, c, seed, hash, quality, dihedral] of GOLDEN) {
    const p = pixels(w, h, c, seed);
    const got = pdqFromPixels(p, { dihedral: true });
    t.same([got.hash, got.quality, got.dihedral?.slice(1)], [hash, quality, dihedral], `${w}x${h}x${c}`);
    // The same again (scratch buffers are reused between calls) and through pdqFromLuma.
    t.equal(pdqFromPixels(p).hash, hash, `${w}x${h}x${c}: second call`);
    t.equal(pdqFromLuma(lumaFromPixels(p), w, h).hash, hash, `${w}x${h}x${c}: from luma`);
    // The same bytes at an odd offset in a larger buffer (the word-at-a-time path needs alignment).
    const shifted = new Uint8Array(p.data.length + 1);
    shifted.set(p.data, 1);
    t.equal(pdqFromPixels({ ...p, data: shifted.subarray(1) }).hash, hash, `${w}x${h}x${c}: unaligned buffer`);
  }
});
